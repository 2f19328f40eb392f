package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.types.DataType;
import io.anneal.toolkit.mup.FalconH1Multipliers;
import io.anneal.toolkit.torchscript.TorchScriptModule;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The fused layer's TorchScript compiles only where the GPU library registers its operators, so
 * without a GPU an edit to it is otherwise unchecked until a GPU call. On the CPU libtorch still
 * parses the whole class before it resolves operators: a syntax error anywhere is reported as one,
 * while a source that parses stops at the first {@code anneal::} operator it calls.
 */
class FusedLayerSourceTest {
    private static String source() throws Exception {
        try (InputStream in = TorchScriptLayers.class.getResourceAsStream("FalconH1FusedLayer.torchscript")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static String refusal(String source) {
        FalconH1Config config = FalconH1Config.fromConfigJson(Map.of("vocab_size", 97, "hidden_size", 32,
                "intermediate_size", 48, "num_hidden_layers", 2, "num_attention_heads", 4, "num_key_value_heads", 2,
                "mamba_d_ssm", 32, "mamba_n_heads", 4, "mamba_d_state", 8, "mamba_chunk_size", 8), "test config");
        Map<String, Object> attributes = TorchScriptLayers.fusedAttributes(config,
                FalconH1Multipliers.fromConfigJson(Map.of(), "defaults"), DataType.FLOAT32, FusedLayerOptions.DEFAULT);
        return assertThrows(IllegalStateException.class,
                () -> TorchScriptModule.compile("FalconH1Layer", source, attributes, Device.cpu())).getMessage();
    }

    @Test
    void theSourceParsesAndStopsOnlyAtTheGpuLibrarysOperators() throws Exception {
        String message = refusal(source());
        assertTrue(message.contains("Unknown builtin op: anneal::"), message);
    }

    @Test
    void aSyntaxErrorIsToldApartFromTheMissingOperators() throws Exception {
        String source = source();
        String broken = source.replace("    mixers = self.mixers(", "    mixers = = self.mixers(");
        assertTrue(!broken.equals(source), "the line to break is gone from the source");
        String message = refusal(broken);
        assertTrue(!message.contains("Unknown builtin op") && message.contains("mixers = = self.mixers("), message);
    }
}
