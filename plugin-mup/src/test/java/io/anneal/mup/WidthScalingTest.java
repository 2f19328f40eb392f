package io.anneal.mup;

import io.anneal.testkit.TestConfig;
import io.anneal.toolkit.mup.FalconH1Multipliers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.config.ConfigException;
import io.anneal.api.model.MupMultipliers;
import org.junit.jupiter.api.Test;

/**
 * The width rules by hand: base width 256 to width 1024 gives r = 1/4, sqrt(r) = 1/2 (Tensor
 * Programs V, Table 3, as documented in WidthScaling).
 */
class WidthScalingTest {
    /** A falcon-h1 multipliers block over plugin-mup's defaults, at the path a model block gives it. */
    private static io.anneal.api.config.ConfigView mup(String hocon) {
        return TestConfig.block("mup-multipliers", "type = falcon-h1\n" + hocon).at("mup");
    }

    private static final FalconH1Multipliers TUNED = new FalconH1Multipliers(5.0, 0.08, 0.6, 0.9, 0.4, 1.2, 0.24,
            new double[] {0.35, 0.25, 0.35, 0.5, 0.35}, new double[] {0.88, 0.58}, 1.0);

    @Test
    void fourTimesWiderHalvesHiddenMultipliersAndQuartersTheHead() {
        FalconH1Multipliers wide = WidthScaling.scale(TUNED, 256, 1024, true);
        assertEquals(5.0, wide.embedding(), 1e-12);         // input layer: unchanged
        assertEquals(0.02, wide.lmHead(), 1e-12);           // 0.08 / 4
        assertEquals(0.3, wide.attentionIn(), 1e-12);       // 0.6 / 2
        assertEquals(0.45, wide.attentionOut(), 1e-12);     // 0.9 / 2
        assertEquals(0.2, wide.key(), 1e-12);               // 0.4 / 2: logits 1/d
        assertEquals(0.6, wide.ssmIn(), 1e-12);             // 1.2 / 2
        assertEquals(0.12, wide.ssmOut(), 1e-12);           // 0.24 / 2
        assertArrayEquals(new double[] {0.35, 0.25, 0.35, 0.5, 0.35}, wide.ssmMultipliers(), 1e-12);
        assertArrayEquals(new double[] {0.44, 0.145}, wide.mlpMultipliers(), 1e-12); // gate / 2, down / 4
        assertEquals(0.5, wide.lrFactor("model.layers.3.self_attn.q_proj.weight"), 1e-12);
        assertEquals(0.5, wide.lrFactor("model.layers.0.mamba.out_proj.weight"), 1e-12);
        assertEquals(1.0, wide.lrFactor("lm_head.weight"), 1e-12);
        assertEquals(1.0, wide.lrFactor("model.embed_tokens.weight"), 1e-12);
        assertEquals(1.0, wide.lrFactor("model.layers.0.mamba.A_log"), 1e-12);
        assertEquals(1.0, wide.lrFactor("model.layers.0.mamba.conv1d.weight"), 1e-12);
        assertEquals(0.4, WidthScaling.scale(TUNED, 256, 1024, false).key(), 1e-12);
    }

    @Test
    void sameWidthOrNoWidthsKeepsTheTunedSet() {
        assertSame(TUNED, WidthScaling.scale(TUNED, 512, 512, true));
        assertSame(TUNED, WidthScaling.scale(TUNED, 0, 0, true));
    }

    @Test
    void factoryReadsDefaultsAndScales() {
        MupMultipliers defaults = new FalconH1MupFactory().create(mup(""), null);
        assertEquals(1.0, defaults.lmHead());
        assertArrayEquals(new double[] {1, 1, 1, 1, 1}, defaults.ssmMultipliers());
        MupMultipliers scaled = new FalconH1MupFactory().create(mup(
                "lm-head-multiplier = 0.08, base-width = 256, width = 1024"), null);
        assertEquals(0.02, scaled.lmHead(), 1e-12);
        MupMultipliers disabled = new FalconH1MupFactory().create(mup(
                "lm-head-multiplier = 0.08, base-width = 256, width = 1024, enabled = false"), null);
        assertEquals(0.08, disabled.lmHead(), 1e-12);
        assertEquals(1.0, disabled.lrFactor("model.layers.0.self_attn.q_proj.weight"));
    }

    @Test
    void badValuesNameThePathAndLine() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> new FalconH1MupFactory().create(mup("ssm-multipliers = [1, 2, 3]"), null));
        assertTrue(e.getMessage().contains("mup.ssm-multipliers") && e.getMessage().contains("5 multipliers"),
                e.getMessage());
        e = assertThrows(ConfigException.class,
                () -> new FalconH1MupFactory().create(mup("key-multiplier = -1"), null));
        assertTrue(e.getMessage().contains("mup.key-multiplier") && e.getMessage().contains("test.conf"), e.getMessage());
        e = assertThrows(ConfigException.class,
                () -> new FalconH1MupFactory().create(mup("width = 1024"), null));
        assertTrue(e.getMessage().contains("base-width"), e.getMessage());
    }
}
