package io.anneal.hybrid;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import io.anneal.api.InputException;
import io.anneal.api.model.ModelOptions;
import io.anneal.hybrid.model.FalconH1Architecture;
import io.anneal.hybrid.model.FalconH1Checkpoints;
import io.anneal.hybrid.model.FalconH1Model;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Save and load of Hugging Face folders, and one clear error for each kind of bad input. */
class CheckpointTest {
    private static final long[][] IDS = {{5, 17, 3, 44, 2, 9, 60, 1, 33, 8, 71}};

    @TempDir
    Path tmp;

    @Test
    void savedFolderLoadsBackWithIdenticalLogitsAndFullConfig() throws IOException {
        TestMultipliers mup = new TestMultipliers(3, 0.25, 0.5, 2, 0.7, 1.1, 0.9, new double[] {1, 2, 3, 4, 5},
                new double[] {0.6, 1.4});
        Path dir = tmp.resolve("ckpt");
        float[] before;
        try (FalconH1Model model = FalconH1Checkpoints.initialize(TinyModels.config(Map.of("tie_word_embeddings", true)),
                mup, ModelOptions.cpu()); NDManager m = NDManager.newBaseManager()) {
            before = LogitsCommand.logits(model, m, IDS).toFloatArray();
            model.save(dir);
        }
        Map<String, Object> json = FalconH1Checkpoints.readConfigJson(dir);
        assertEquals(List.of("FalconH1ForCausalLM"), json.get("architectures"));
        assertEquals("falcon_h1", json.get("model_type"));
        assertEquals(List.of(1.0, 2.0, 3.0, 4.0, 5.0), json.get("ssm_multipliers"));
        assertEquals(0.25, json.get("lm_head_multiplier"));
        assertEquals(Double.POSITIVE_INFINITY, ((List<?>) json.get("time_step_limit")).get(1));
        assertTrue(Files.readString(dir.resolve("config.json")).contains("Infinity"), "Python's json reads bare Infinity");
        try (FalconH1Model loaded = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu(), new TestContext());
                NDManager m = NDManager.newBaseManager()) {
            assertArrayEquals(before, LogitsCommand.logits(loaded, m, IDS).toFloatArray());
            assertEquals(mup.lmHead(), loaded.multipliers().lmHead());
        }
        // A tied model's folder holds no lm_head.weight, as transformers writes it.
        assertTrue(!Files.readString(dir.resolve("model.safetensors"), StandardCharsets.ISO_8859_1).contains("lm_head"));
    }

    @Test
    void shardedFolderLoads() throws IOException {
        Path dir = tmp.resolve("sharded");
        float[] before;
        try (FalconH1Model model = FalconH1Checkpoints.initialize(TinyModels.config(Map.of()), TestMultipliers.ones(),
                ModelOptions.cpu()); NDManager m = NDManager.newBaseManager()) {
            before = LogitsCommand.logits(model, m, IDS).toFloatArray();
            model.save(dir);
        }
        // Re-shard: move the file and describe it in an index, as transformers does for big models.
        Files.move(dir.resolve("model.safetensors"), dir.resolve("model-00001-of-00001.safetensors"));
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\": {}, \"weight_map\": {\"model.embed_tokens.weight\": \"model-00001-of-00001.safetensors\"}}");
        try (FalconH1Model loaded = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu(), new TestContext());
                NDManager m = NDManager.newBaseManager()) {
            assertArrayEquals(before, LogitsCommand.logits(loaded, m, IDS).toFloatArray());
        }
    }

    private Path savedTiny(String name) throws IOException {
        Path dir = tmp.resolve(name);
        try (FalconH1Model model = FalconH1Checkpoints.initialize(TinyModels.config(Map.of()), TestMultipliers.ones(),
                ModelOptions.cpu())) {
            model.save(dir);
        }
        return dir;
    }

    private static String loadError(Path dir) {
        InputException e = assertThrows(InputException.class,
                () -> FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu(), new TestContext()).close());
        return e.getMessage();
    }

    @Test
    void truncatedFileNamesFileAndTensor() throws IOException {
        Path dir = savedTiny("truncated");
        Path file = dir.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length - 100));
        String message = loadError(dir);
        assertTrue(message.contains("model.safetensors") && message.contains("lm_head.weight")
                && message.contains("truncated"), message);
    }

    @Test
    void headerLengthPastTheEnd() throws IOException {
        Path dir = savedTiny("header");
        Path file = dir.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, bytes.length + 1000L);
        Files.write(file, bytes);
        String message = loadError(dir);
        assertTrue(message.contains("model.safetensors") && message.contains("points past the end"), message);
    }

    @Test
    void malformedHeaderJson() throws IOException {
        Path dir = savedTiny("json");
        Path file = dir.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        bytes[8] = 'x';
        Files.write(file, bytes);
        assertTrue(loadError(dir).contains("not valid JSON"));
    }

    @Test
    void missingTensorAndConfigMismatch() throws IOException {
        Path dir = savedTiny("mismatch");
        Path config = dir.resolve("config.json");
        String original = Files.readString(config);
        Files.writeString(config, original.replace("\"num_hidden_layers\" : 2", "\"num_hidden_layers\" : 3"));
        String message = loadError(dir);
        assertTrue(message.contains("model.layers.2.") && message.contains("missing"), message);

        Files.writeString(config, original.replace("\"intermediate_size\" : 48", "\"intermediate_size\" : 50"));
        message = loadError(dir);
        assertTrue(message.contains("feed_forward.gate_proj.weight") && message.contains("(48, 32)")
                && message.contains("(50, 32)"), message);

        Files.writeString(config, original.replace("\"num_hidden_layers\" : 2", "\"num_hidden_layers\" : 1"));
        message = loadError(dir);
        assertTrue(message.contains("model.layers.1.") && message.contains("not in a Falcon-H1 model"), message);
    }

    @Test
    void unexpectedDtypeIsNamed() throws IOException {
        Path dir = savedTiny("dtype");
        Path file = dir.resolve("model.safetensors");
        String text = new String(Files.readAllBytes(file), StandardCharsets.ISO_8859_1);
        // Relabel the 4-byte D vector as I32: the size still fits, only the dtype is wrong.
        int at = text.indexOf("\"model.layers.0.mamba.D\":{\"dtype\":\"F32\"");
        assertTrue(at > 0, "header layout");
        String patched = text.substring(0, at) + text.substring(at).replaceFirst("\"F32\"", "\"I32\"");
        Files.write(file, patched.getBytes(StandardCharsets.ISO_8859_1));
        String message = loadError(dir);
        assertTrue(message.contains("model.layers.0.mamba.D") && message.contains("I32"), message);
    }

    @Test
    void aFailedSaveLeavesNoTemporaryFolder() throws IOException {
        Path target = tmp.resolve("final");
        Files.writeString(target, "a file where the folder should go: the save fails after its temporary folder is written");
        try (FalconH1Model model = FalconH1Checkpoints.initialize(TinyModels.config(Map.of()), TestMultipliers.ones(),
                ModelOptions.cpu())) {
            assertThrows(IOException.class, () -> model.save(target));
        }
        try (var left = Files.list(tmp)) {
            assertEquals(List.of("final"), left.map(p -> p.getFileName().toString()).toList());
        }
    }

    @Test
    void notACheckpoint() {
        assertTrue(loadError(tmp).contains("config.json is missing"));
    }
}
