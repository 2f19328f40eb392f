package io.anneal.runtime.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.anneal.api.InputException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunConfigRecordTest {
    private static final Config STARTED = ConfigFactory.parseString(
            "pipeline { seed = 1, threads = 2 }, model { hidden-size = 128, kernels = auto }, "
                    + "stages = [ { name = sft, schedule { peak-lr = 1e-3 } } ]");

    @Test
    void aResumeWithTheSameValuesOrOnlyEnvironmentChangesGoesOn(@TempDir Path run) throws Exception {
        RunConfigRecord.check(run, STARTED, false, List.of());
        assertTrue(Files.isRegularFile(run.resolve("pipeline.json")));
        RunConfigRecord.check(run, STARTED, true, List.of());
        Config elsewhere = ConfigFactory.parseString("pipeline.threads = 16, model.kernels = fused, model.ssd-recompute = false")
                .withFallback(STARTED);
        RunConfigRecord.check(run, elsewhere, true, List.of());
    }

    @Test
    void changedModelSeedOrLearningRateAreRefusedNamingEachKeyUnlessAllowed(@TempDir Path run) throws Exception {
        RunConfigRecord.check(run, STARTED, false, List.of());
        Config changed = ConfigFactory.parseString("pipeline.seed = 2, model.hidden-size = 64").withFallback(STARTED)
                .withValue("stages", ConfigFactory.parseString("s = [ { name = sft, schedule { peak-lr = 5e-4 } } ]")
                        .getValue("s"));
        InputException e = assertThrows(InputException.class, () -> RunConfigRecord.check(run, changed, true, List.of()));
        assertTrue(e.getMessage().contains("model.hidden-size: 128 -> 64"), e.getMessage());
        assertTrue(e.getMessage().contains("pipeline.seed: 1 -> 2"), e.getMessage());
        assertTrue(e.getMessage().contains("stages.0.schedule.peak-lr: 0.001 -> 5.0E-4"), e.getMessage());
        assertTrue(e.getMessage().contains("--allow-change KEY"), e.getMessage());
        RunConfigRecord.check(run, changed, true, List.of("stages[0].schedule", "pipeline.seed", "model.hidden-size"));
        // the record now holds what the run continues with
        RunConfigRecord.check(run, changed, true, List.of());
    }

    @Test
    void changesListsAddedAndRemovedKeys() {
        assertEquals(List.of("a: (absent) -> 1", "b: 2 -> (absent)"),
                RunConfigRecord.changes(Map.of("b", "2"), Map.of("a", "1"), List.of()));
    }
}
