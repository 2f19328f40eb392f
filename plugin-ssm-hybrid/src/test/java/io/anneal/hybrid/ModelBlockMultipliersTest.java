package io.anneal.hybrid;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.model.MupMultipliers;
import io.anneal.toolkit.mup.FalconH1Multipliers;
import io.anneal.hybrid.model.FalconH1Architecture;
import io.anneal.testkit.TestConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Issue 13 item 4: the hybrid plugin reads the muP multipliers itself (model block, config.json);
 * only a {@code mup} block goes through the MupMultipliers extension point (plugin mup).
 */
class ModelBlockMultipliersTest {
    /** A context with no extension at all: what a distribution without plugin mup offers the hybrid. */
    static final class NoExtensions implements ExtensionContext {
        final java.util.List<String> asked = new java.util.ArrayList<>();

        @Override
        public <T> T build(Class<T> point, ConfigView block) {
            asked.add(point.getSimpleName() + " " + block.path());
            return point.cast(TestMultipliers.ones());
        }

        @Override
        public <T> T build(Class<T> point, String type, Map<String, ?> settings, String origin) {
            throw new UnsupportedOperationException("asked for " + point + " " + type);
        }

        @Override
        public Path resolvePath(ConfigView block, String key) {
            return Path.of(block.getString(key));
        }
    }

    private static ConfigView model(String hocon) {
        return TestConfig.block("model-architecture", "type = falcon-h1\n" + hocon).at("model");
    }

    private static MupMultipliers multipliers(ConfigView block, ExtensionContext context) {
        FalconH1Architecture a = (FalconH1Architecture) new FalconH1ArchitectureFactory().create(block, context);
        try (var m = a.initialize(io.anneal.api.model.ModelOptions.cpu())) {
            return ((io.anneal.hybrid.model.FalconH1Model) m).multipliers();
        }
    }

    @Test
    void theModelBlockCarriesTheMultipliersWithoutAnyOtherPlugin() {
        NoExtensions context = new NoExtensions();
        MupMultipliers m = multipliers(model("embedding-multiplier = 4.0\nlm-head-multiplier = 0.5\n"
                + "ssm-multipliers = [1, 2, 3, 4, 5]\nlayers = ndarray"), context);
        assertEquals(List.of(), context.asked, "no extension point is asked");
        assertEquals(4.0, m.embedding());
        assertEquals(0.5, m.lmHead());
        assertEquals(1.0, m.key(), "FalconH1Config's default");
        assertArrayEquals(new double[] {1, 2, 3, 4, 5}, m.ssmMultipliers());
        assertEquals(1.0, m.lrFactor("model.layers.0.mamba.in_proj.weight"));
    }

    @Test
    void aMupBlockGoesThroughTheExtensionPointAndMultipliersLiveInOnePlace() {
        NoExtensions context = new NoExtensions();
        multipliers(model("mup { type = falcon-h1, base-width = 32, width = 64 }\nlayers = ndarray"), context);
        assertEquals(List.of("MupMultipliers model.mup"), context.asked);
        ConfigException e = assertThrows(ConfigException.class, () -> new FalconH1ArchitectureFactory().create(
                model("key-multiplier = 2.0\nmup { type = falcon-h1 }"), new NoExtensions()));
        assertTrue(e.getMessage().contains("model.key-multiplier: expected the multipliers in one place: with a mup block, "
                + "set them there (mup.key-multiplier)"), e.getMessage());
        assertEquals(Map.of("mup", "mup"), new FalconH1ArchitectureFactory().nestedExtensionPlugins());
    }

    @Test
    void configJsonFieldsAreReadWithTransformersDefaultsAndCheckedNamingTheFile() {
        FalconH1Multipliers m = FalconH1Multipliers.fromConfigJson(Map.of("lm_head_multiplier", 0.125,
                "mlp_multipliers", List.of(0.5, 2.0)), "ckpt/config.json");
        assertEquals(0.125, m.lmHead());
        assertEquals(1.0, m.embedding());
        assertArrayEquals(new double[] {0.5, 2.0}, m.mlpMultipliers());
        assertArrayEquals(new double[] {1, 1, 1, 1, 1}, m.ssmMultipliers());
        InputException bad = assertThrows(InputException.class, () -> FalconH1Multipliers.fromConfigJson(
                Map.of("ssm_multipliers", List.of(1.0, 2.0)), "ckpt/config.json"));
        assertEquals("ckpt/config.json: ssm_multipliers (z, x, B, C, dt): expected 5 multipliers, found [1.0, 2.0]", bad.getMessage());
    }
}
