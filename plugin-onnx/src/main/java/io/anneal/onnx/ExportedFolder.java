package io.anneal.onnx;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.anneal.api.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A folder written by {@code anneal export onnx}: {@code prefill.onnx}, {@code decode.onnx}, the
 * weights both share ({@code weights.onnx.data}), {@code anneal-onnx.json} (the model's
 * config.json fields and the graphs' opset) and the tokenizer files of the checkpoint.
 */
record ExportedFolder(Path directory, FalconH1Spec spec, Map<String, Object> manifest) {
    static final String PREFILL = "prefill.onnx";
    static final String DECODE = "decode.onnx";
    static final String WEIGHTS = "weights.onnx.data";
    static final String MANIFEST = "anneal-onnx.json";

    /** Jackson as Python's json: bare Infinity both ways (time_step_limit is [0.0, Infinity]). */
    static final ObjectMapper JSON = JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(SerializationFeature.INDENT_OUTPUT).build();

    Path prefill() {
        return directory.resolve(PREFILL);
    }

    Path decode() {
        return directory.resolve(DECODE);
    }

    @SuppressWarnings("unchecked")
    static ExportedFolder read(Path directory) {
        for (String name : new String[] {MANIFEST, PREFILL, DECODE, WEIGHTS}) {
            if (!Files.isRegularFile(directory.resolve(name))) {
                throw new InputException(directory + ": not an exported ONNX folder: " + name + " is missing (write one with"
                        + " anneal export onnx --checkpoint DIR --out " + directory + ")");
            }
        }
        Path file = directory.resolve(MANIFEST);
        Map<String, Object> manifest;
        try {
            manifest = JSON.readValue(file.toFile(), Map.class);
        } catch (IOException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
        if (!(manifest.get("config") instanceof Map<?, ?> config)) {
            throw new InputException(file + ": expected an object 'config' (the model's config.json fields)");
        }
        return new ExportedFolder(directory, FalconH1Spec.of((Map<String, Object>) config, file + " config"), manifest);
    }
}
