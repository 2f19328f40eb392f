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
import io.anneal.hybrid.model.FalconH1Config;
import io.anneal.hybrid.model.FalconH1Model;
import io.anneal.hybrid.model.SaveFormat;
import io.anneal.hybrid.safetensors.SafetensorsReader;
import io.anneal.hybrid.safetensors.SafetensorsWriter;
import io.anneal.hybrid.safetensors.SafetensorsWriter.Dtype;
import io.anneal.api.optim.NamedParameter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
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
        try (FalconH1Model loaded = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu());
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
        try (FalconH1Model loaded = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu());
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
                () -> FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu()).close());
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

    private static Map<String, float[]> values(FalconH1Model model) {
        Map<String, float[]> out = new java.util.LinkedHashMap<>();
        for (NamedParameter p : model.parameters()) {
            out.put(p.name(), p.parameter().getArray().toFloatArray());
        }
        return out;
    }

    /** bfloat16 from the float bits, computed here: upper 16 bits, lower half rounded to nearest even. */
    private static float bfloat16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int upper = bits >>> 16;
        int lower = bits & 0xFFFF;
        if (lower > 0x8000 || (lower == 0x8000 && (upper & 1) == 1)) {
            upper++;
        }
        return Float.intBitsToFloat(upper << 16);
    }

    @ParameterizedTest
    @EnumSource(Dtype.class)
    void savedInEachDtypeLoadsBackWithItsRounding(Dtype dtype) throws IOException {
        Path dir = tmp.resolve(dtype.torchName());
        Map<String, float[]> before;
        try (FalconH1Model model = FalconH1Checkpoints.initialize(TinyModels.config(Map.of()), TestMultipliers.ones(),
                ModelOptions.cpu())) {
            before = values(model);
            model.saveAs(new SaveFormat(dtype, SaveFormat.DEFAULT.maxShardBytes())).save(dir);
        }
        Map<String, Object> json = FalconH1Checkpoints.readConfigJson(dir);
        assertEquals(dtype.torchName(), json.get("torch_dtype"));
        assertEquals(Map.of("_from_model_config", true, "bos_token_id", 1, "eos_token_id", 2, "pad_token_id", 0),
                FalconH1Checkpoints.JSON.readValue(dir.resolve("generation_config.json").toFile(), Map.class));
        String header = Files.readString(dir.resolve("model.safetensors"), StandardCharsets.ISO_8859_1);
        assertTrue(header.contains("\"dtype\":\"" + dtype.safetensorsName() + "\""), "dtype in the header");
        try (FalconH1Model loaded = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu())) {
            Map<String, float[]> after = values(loaded);
            assertEquals(before.keySet(), after.keySet());
            for (Map.Entry<String, float[]> e : before.entrySet()) {
                float[] expected = e.getValue().clone();
                for (int i = 0; i < expected.length; i++) {
                    expected[i] = switch (dtype) {
                        case FLOAT32 -> expected[i];
                        case BFLOAT16 -> bfloat16(expected[i]);
                        case FLOAT16 -> SafetensorsReader.halfToFloat(SafetensorsWriter.toFloat16(expected[i]));
                    };
                }
                assertArrayEquals(expected, after.get(e.getKey()), e.getKey());
            }
        }
    }

    @Test
    void shardedSaveWithATinyLimitLoadsBackAndAMissingShardIsNamed() throws IOException {
        Path dir = tmp.resolve("shards");
        float[] before;
        try (FalconH1Model model = FalconH1Checkpoints.initialize(TinyModels.config(Map.of()), TestMultipliers.ones(),
                ModelOptions.cpu()); NDManager m = NDManager.newBaseManager()) {
            before = LogitsCommand.logits(model, m, IDS).toFloatArray();
            model.saveAs(new SaveFormat(Dtype.FLOAT32, 8192)).save(dir);
        }
        List<String> shards;
        try (var files = Files.list(dir)) {
            shards = files.map(p -> p.getFileName().toString()).filter(n -> n.matches("model-\\d{5}-of-\\d{5}\\.safetensors"))
                    .sorted().toList();
        }
        assertTrue(shards.size() > 2, "shards " + shards);
        assertTrue(!Files.exists(dir.resolve("model.safetensors")));
        Map<?, ?> index = FalconH1Checkpoints.JSON.readValue(dir.resolve("model.safetensors.index.json").toFile(), Map.class);
        long total = 0;
        try (FalconH1Model loaded = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu());
                NDManager m = NDManager.newBaseManager()) {
            assertArrayEquals(before, LogitsCommand.logits(loaded, m, IDS).toFloatArray());
            total = loaded.parameterCount() * 4;
        }
        assertEquals(total, ((Number) ((Map<?, ?>) index.get("metadata")).get("total_size")).longValue());
        assertEquals(shards.get(0), ((Map<?, ?>) index.get("weight_map")).get("model.embed_tokens.weight"));

        Files.delete(dir.resolve(shards.get(1)));
        String message = loadError(dir);
        assertTrue(message.contains("model.safetensors.index.json") && message.contains(shards.get(1))
                && message.contains("missing"), message);

        // Saving again into the folder replaces every file of the old save: one file, no index, no shards.
        try (FalconH1Model model = FalconH1Checkpoints.initialize(TinyModels.config(Map.of()), TestMultipliers.ones(),
                ModelOptions.cpu())) {
            model.save(dir);
        }
        try (var files = Files.list(dir)) {
            assertEquals(List.of("config.json", "generation_config.json", "model.safetensors"),
                    files.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void aTensorOfSeveralPiecesRoundTrips() throws IOException {
        // 140000 x 32 embedding and head: more than one piece of SafetensorsWriter.PIECE_ELEMENTS each
        FalconH1Config config = TinyModels.config(Map.of("vocab_size", 140_000, "num_hidden_layers", 1));
        assertTrue(140_000L * 32 > SafetensorsWriter.PIECE_ELEMENTS);
        Path dir = tmp.resolve("pieces");
        Map<String, float[]> before;
        try (FalconH1Model model = FalconH1Checkpoints.initialize(config, TestMultipliers.ones(), ModelOptions.cpu())) {
            before = values(model);
            model.save(dir);
        }
        try (FalconH1Model loaded = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu())) {
            Map<String, float[]> after = values(loaded);
            for (Map.Entry<String, float[]> e : before.entrySet()) {
                assertArrayEquals(e.getValue(), after.get(e.getKey()), e.getKey());
            }
        }
    }

    @Test
    void notACheckpoint() {
        assertTrue(loadError(tmp).contains("config.json is missing"));
    }

    @Test
    void configJsonHasTheSameBytesInEveryJvm() throws Exception {
        // a checkpoint must be byte-identical between a run and its resume (issue 15): no map whose
        // iteration order is salted per JVM (Map.of) may reach config.json
        Map<String, Object> json = TinyModels.config(Map.of()).toConfigJson();
        assertTrue(json instanceof java.util.LinkedHashMap, json.getClass().toString());
        Object rope = json.get("rope_parameters");
        assertTrue(rope instanceof java.util.LinkedHashMap, "rope_parameters is " + rope.getClass());
        assertEquals(java.util.List.of("rope_type", "rope_theta"), java.util.List.copyOf(((Map<?, ?>) rope).keySet()));
    }
}
