package io.anneal.hybrid.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.anneal.api.InputException;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.model.MupMultipliers;
import io.anneal.hybrid.safetensors.SafetensorsReader;
import io.anneal.hybrid.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;

/** Random initialisation, Hugging Face checkpoint folders in and out. */
public final class FalconH1Checkpoints {

    /** Jackson set up for Python's json: bare Infinity/NaN both ways (time_step_limit is [0.0, Infinity]). */
    public static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .disable(JsonWriteFeature.WRITE_NAN_AS_STRINGS)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .build();

    private FalconH1Checkpoints() {
    }

    /**
     * Random initialisation as transformers' {@code FalconH1PreTrainedModel._init_weights}: linear,
     * conv and embedding weights ~ N(0, initializer_range) (the padding row of the embedding zero),
     * biases 0, norm weights 1, dt_bias 1, A_log = log(1..H), D 1. Each tensor draws from its own
     * stream seeded by (seed, name), so a model is the same on any device.
     */
    public static FalconH1Model initialize(FalconH1Config config, MupMultipliers mup, ModelOptions options) {
        return build(config, mup, options, (m, name, shape) -> m.create(initialValues(config, options.seed(), name, shape), shape));
    }

    private static float[] initialValues(FalconH1Config config, long seed, String name, Shape shape) {
        int n = Math.toIntExact(shape.size());
        float[] v = new float[n];
        if (name.endsWith("layernorm.weight") || name.endsWith("norm.weight") || name.endsWith("dt_bias")
                || name.endsWith(".D")) {
            java.util.Arrays.fill(v, 1f);
        } else if (name.endsWith("A_log")) {
            for (int i = 0; i < n; i++) {
                v[i] = (float) Math.log(i + 1);
            }
        } else if (name.endsWith(".weight")) {
            SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + name.hashCode());
            java.util.Random gaussian = new java.util.Random(random.nextLong());
            float std = (float) config.initializerRange();
            for (int i = 0; i < n; i++) {
                v[i] = (float) gaussian.nextGaussian() * std;
            }
            if (name.equals("model.embed_tokens.weight") && config.padTokenId() >= 0
                    && config.padTokenId() < config.vocabSize()) {
                int row = config.padTokenId() * config.hiddenSize();
                java.util.Arrays.fill(v, row, row + config.hiddenSize(), 0f);
            }
        }
        return v; // biases stay 0
    }

    /** Makes one parameter's values on the model's manager. */
    private interface TensorMaker {
        NDArray make(NDManager manager, String name, Shape shape);
    }

    private static FalconH1Model build(FalconH1Config config, MupMultipliers mup, ModelOptions options, TensorMaker values) {
        NDManager manager = NDManager.newBaseManager(options.device());
        try {
            Map<String, Parameter> parameters = new LinkedHashMap<>();
            for (Map.Entry<String, Shape> e : FalconH1Model.tensorShapes(config).entrySet()) {
                NDArray array = values.make(manager, e.getKey(), e.getValue());
                array.setName(e.getKey());
                array.setRequiresGradient(true);
                Parameter p = Parameter.builder().setName(e.getKey()).setType(Parameter.Type.WEIGHT)
                        .optShape(e.getValue()).optArray(array).build();
                parameters.put(e.getKey(), p);
            }
            return new FalconH1Model(config, mup, options, manager, parameters);
        } catch (RuntimeException e) {
            manager.close();
            throw e;
        }
    }

    /**
     * One tensor of a checkpoint, read in pieces of {@link SafetensorsWriter#PIECE_ELEMENTS}: the heap
     * holds one piece at a time, and a tensor over 2 GiB is joined on the device from its pieces.
     */
    private static NDArray read(NDManager manager, SafetensorsReader reader, String name, Shape shape) {
        long n = shape.size();
        if (n <= SafetensorsWriter.PIECE_ELEMENTS) {
            return manager.create(reader.readFloat32(name, 0, (int) n), shape);
        }
        try (NDList pieces = new NDList()) {
            for (long from = 0; from < n; from += SafetensorsWriter.PIECE_ELEMENTS) {
                pieces.add(manager.create(reader.readFloat32(name, from, (int) Math.min(SafetensorsWriter.PIECE_ELEMENTS, n - from))));
            }
            try (NDArray joined = NDArrays.concat(pieces)) {
                return joined.reshape(shape);
            }
        }
    }

    /** Reads {@code config.json} of a checkpoint folder as a map; errors name the file. */
    public static Map<String, Object> readConfigJson(Path directory) {
        Path file = directory.resolve("config.json");
        if (!Files.isRegularFile(file)) {
            throw new InputException(directory + ": not a Hugging Face checkpoint folder: config.json is missing");
        }
        try {
            @SuppressWarnings("unchecked")
            Map<String, Object> json = JSON.readValue(file.toFile(), Map.class);
            Object type = json.get("model_type");
            if (type != null && !"falcon_h1".equals(type)) {
                throw new InputException(file + ": model_type is '" + type + "', expected 'falcon_h1'");
            }
            return json;
        } catch (IOException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
    }

    /**
     * Loads {@code model.safetensors} or the shards of {@code model.safetensors.index.json}. Every
     * expected tensor must be present with the expected shape; unexpected tensors are an error too
     * (a config that does not match the weights), except a tied model's redundant lm_head.weight.
     */
    public static FalconH1Model load(Path directory, FalconH1Config config, MupMultipliers mup, ModelOptions options) {
        Map<String, SafetensorsReader> byTensor = new LinkedHashMap<>();
        List<SafetensorsReader> readers = new ArrayList<>();
        try {
            for (Path shard : shards(directory)) {
                SafetensorsReader reader = SafetensorsReader.open(shard);
                readers.add(reader);
                for (String name : reader.entries().keySet()) {
                    byTensor.put(name, reader);
                }
            }
            Map<String, Shape> expected = FalconH1Model.tensorShapes(config);
            Set<String> unexpected = new TreeSet<>(byTensor.keySet());
            unexpected.removeAll(expected.keySet());
            if (config.tieWordEmbeddings()) {
                unexpected.remove("lm_head.weight");
            }
            if (!unexpected.isEmpty()) {
                throw new InputException(directory + ": tensors not in a Falcon-H1 model of this config.json: "
                        + unexpected + " (does config.json match the weights?)");
            }
            for (Map.Entry<String, Shape> e : expected.entrySet()) {
                SafetensorsReader reader = byTensor.get(e.getKey());
                if (reader == null) {
                    throw new InputException(directory + ": tensor '" + e.getKey() + "' is missing (expected shape "
                            + e.getValue() + " from config.json)");
                }
                long[] found = reader.entries().get(e.getKey()).shape();
                if (!new Shape(found).equals(e.getValue())) {
                    throw new InputException(reader.file() + ": tensor '" + e.getKey() + "' has shape "
                            + new Shape(found) + ", config.json implies " + e.getValue());
                }
            }
            return build(config, mup, options, (m, name, shape) -> read(m, byTensor.get(name), name, shape));
        } finally {
            readers.forEach(SafetensorsReader::close);
        }
    }

    private static List<Path> shards(Path directory) {
        Path single = directory.resolve("model.safetensors");
        if (Files.isRegularFile(single)) {
            return List.of(single);
        }
        Path index = directory.resolve("model.safetensors.index.json");
        if (!Files.isRegularFile(index)) {
            throw new InputException(directory + ": neither model.safetensors nor model.safetensors.index.json found");
        }
        try {
            Map<?, ?> json = JSON.readValue(index.toFile(), Map.class);
            if (!(json.get("weight_map") instanceof Map<?, ?> map)) {
                throw new InputException(index + ": expected an object 'weight_map' of tensor -> shard file");
            }
            Set<Path> files = new java.util.LinkedHashSet<>();
            for (Map.Entry<?, ?> e : map.entrySet()) {
                Path shard = directory.resolve(String.valueOf(e.getValue())).normalize();
                if (!shard.startsWith(directory.normalize())) {
                    throw new InputException(index + ": shard '" + e.getValue() + "' of tensor '" + e.getKey()
                            + "' is outside the folder; expected a file name beside the index");
                }
                if (!Files.isRegularFile(shard)) {
                    throw new InputException(index + ": shard '" + e.getValue() + "' (of tensor '" + e.getKey()
                            + "') is missing; expected " + shard);
                }
                files.add(shard);
            }
            return new ArrayList<>(files);
        } catch (IOException e) {
            throw new InputException(index + ": malformed JSON: " + e.getMessage(), e);
        }
    }

    /**
     * Writes the folder in float32 in shards of 5 GB ({@link SaveFormat#DEFAULT}); see
     * {@link #save(FalconH1Model, Path, SaveFormat)}.
     */
    public static void save(FalconH1Model model, Path directory) throws IOException {
        save(model, directory, SaveFormat.DEFAULT);
    }

    /**
     * Writes a Hugging Face folder: {@code config.json} (architectures, model_type falcon_h1, every
     * field, the muP multipliers, and the {@code torch_dtype} of the weights),
     * {@code generation_config.json} (bos, eos and pad ids, as transformers derives it from the config)
     * and the weights in the chosen dtype (checkpoint names; a tied model omits lm_head.weight, as
     * transformers' own save does), as {@code model.safetensors} or, past the shard limit, shards and
     * {@code model.safetensors.index.json}. The weights are streamed tensor by tensor, in pieces.
     * Written to a temporary folder and renamed.
     */
    public static void save(FalconH1Model model, Path directory, SaveFormat format) throws IOException {
        Path parent = directory.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path tmp = Files.createTempDirectory(parent, directory.getFileName() + ".tmp");
        try {
            writeInto(model, format, tmp, directory);
        } catch (IOException | RuntimeException e) {
            // never leave a partial folder behind (a full disk would otherwise keep filling up)
            try (var left = Files.exists(tmp) ? Files.walk(tmp) : java.util.stream.Stream.<Path>empty()) {
                for (Path p : (Iterable<Path>) left.sorted(java.util.Comparator.reverseOrder())::iterator) {
                    Files.deleteIfExists(p);
                }
            } catch (IOException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
    }

    /** Files of a model folder that a save replaces (an older save's shards included). */
    private static boolean ours(String file) {
        return file.equals("config.json") || file.equals("generation_config.json")
                || file.equals(SafetensorsWriter.SINGLE_FILE) || file.equals(SafetensorsWriter.INDEX_FILE)
                || file.matches("model-\\d{5}-of-\\d{5}\\.safetensors");
    }

    private static void writeInto(FalconH1Model model, SaveFormat format, Path tmp, Path directory) throws IOException {
        FalconH1Config config = model.config();
        Map<String, Object> json = new LinkedHashMap<>(model.configJson());
        json.put("torch_dtype", format.dtype().torchName());
        JSON.writeValue(tmp.resolve("config.json").toFile(), json);
        // transformers' GenerationConfig.from_model_config: the special ids of the config (sorted keys)
        Map<String, Object> generation = new LinkedHashMap<>();
        generation.put("_from_model_config", true);
        generation.put("bos_token_id", config.bosTokenId());
        generation.put("eos_token_id", config.eosTokenId());
        generation.put("pad_token_id", config.padTokenId());
        JSON.writeValue(tmp.resolve("generation_config.json").toFile(), generation);
        List<ParameterSource> tensors = new ArrayList<>();
        for (Map.Entry<String, Parameter> e : model.parameterMap().entrySet()) {
            tensors.add(new ParameterSource(e.getKey(), e.getValue().getArray()));
        }
        SafetensorsWriter.writeModel(tmp, tensors, format.dtype(), format.maxShardBytes(), Map.of("format", "pt"));
        if (Files.exists(directory)) {
            try (var files = Files.list(directory)) {
                for (Path f : (Iterable<Path>) files::iterator) {
                    if (ours(f.getFileName().toString())) {
                        Files.delete(f);
                    }
                }
            }
            try (var files = Files.list(tmp)) {
                for (Path f : (Iterable<Path>) files::iterator) {
                    Files.move(f, directory.resolve(f.getFileName()));
                }
            }
            Files.delete(tmp);
        } else {
            Files.move(tmp, directory);
        }
    }

    /** A parameter's float32 values, copied from the device one piece at a time. */
    private record ParameterSource(String name, NDArray array) implements SafetensorsWriter.Source {
        @Override
        public long[] shape() {
            return array.getShape().getShape();
        }

        @Override
        public float[] values(long from, int count) {
            if (from == 0 && count == array.size()) {
                return floats(array);
            }
            try (NDArray flat = array.reshape(-1);
                    NDArray piece = flat.get(new NDIndex("{}:{}", from, from + count))) {
                return floats(piece);
            }
        }

        private static float[] floats(NDArray a) {
            if (a.getDataType() == DataType.FLOAT32) {
                return a.toFloatArray();
            }
            try (NDArray f = a.toType(DataType.FLOAT32, true)) {
                return f.toFloatArray();
            }
        }
    }
}
