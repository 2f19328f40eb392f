package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.config.ConfigException;
import io.anneal.hybrid.model.FusedLayerOptions.BranchStream;
import io.anneal.testkit.TestConfig;
import org.junit.jupiter.api.Test;

/** model.ssd-recompute, model.branch-stream and model.keep-weight-casts, over the plugin's reference.conf defaults. */
class FusedLayerOptionsTest {
    private static FusedLayerOptions options(String hocon) {
        return FusedLayerOptions.fromHocon(TestConfig.block("model-architecture", "type = falcon-h1" + hocon).at("model"));
    }

    @Test
    void defaultsRecomputeTheScanOnOneStream() {
        assertEquals(new FusedLayerOptions(true, BranchStream.NONE, false), options(""));
        assertEquals(FusedLayerOptions.DEFAULT, options(""));
        assertEquals("", FusedLayerOptions.DEFAULT.describe());
    }

    @Test
    void settingsAreReadAndTheStatusLineSaysThose() {
        FusedLayerOptions both = options(", ssd-recompute = false, branch-stream = attention");
        assertEquals(new FusedLayerOptions(false, BranchStream.ATTENTION, false), both);
        assertEquals("; the SSD scan keeps its intermediates for the backward (model.ssd-recompute = false)"
                + "; attention runs on a second stream beside Mamba (model.branch-stream = attention)", both.describe());
        assertEquals("; Mamba runs on a second stream beside attention (model.branch-stream = mamba)",
                options(", branch-stream = mamba").describe());
        FusedLayerOptions kept = options(", keep-weight-casts = true");
        assertEquals(new FusedLayerOptions(true, BranchStream.NONE, true), kept);
        assertEquals("; the linear layers keep their weights' half-precision casts for the backward"
                + " (model.keep-weight-casts = true)", kept.describe());
    }

    @Test
    void theReferencePathsLineSaysWhichSettingsChangeNothingThere() {
        assertEquals("", FusedLayerOptions.DEFAULT.ignoredOnReference());
        assertEquals("; model.branch-stream = attention changes nothing here (fused path only)",
                options(", branch-stream = attention").ignoredOnReference());
        assertEquals("; model.ssd-recompute = false and model.branch-stream = mamba change nothing here (fused path only)",
                options(", ssd-recompute = false, branch-stream = mamba").ignoredOnReference());
        assertEquals("; model.ssd-recompute = false, model.branch-stream = mamba and model.keep-weight-casts = true"
                + " change nothing here (fused path only)",
                options(", ssd-recompute = false, branch-stream = mamba, keep-weight-casts = true").ignoredOnReference());
    }

    @Test
    void aKeepWeightCastsThatIsNoBooleanNamesTheKey() {
        ConfigException e = assertThrows(ConfigException.class, () -> options(", keep-weight-casts = sometimes"));
        assertTrue(e.getMessage().contains("model.keep-weight-casts"), e.getMessage());
    }

    @Test
    void anUnknownBranchNamesTheKeyAndTheChoices() {
        ConfigException e = assertThrows(ConfigException.class, () -> options(", branch-stream = both"));
        assertTrue(e.getMessage().contains("model.branch-stream") && e.getMessage().contains("none")
                && e.getMessage().contains("attention") && e.getMessage().contains("mamba"), e.getMessage());
    }
}
