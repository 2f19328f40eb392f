package io.anneal.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.Test;

/**
 * The loss-scale rule the optimizer graph applies on the device ({@link GraphedStep#updatedScale})
 * and the host's {@link DynamicLossScale}, which follows it, against a trajectory worked out by hand
 * from torch.amp.GradScaler's rule (growth interval 3, backoff 0.5, growth 2).
 */
class DeviceLossScaleTest {
    private static final LossScaleSettings SETTINGS = new LossScaleSettings(1024, 3, 0.5, 2.0, 10);
    private static final int[] SKIPPED = {0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0};
    /** [scale, good steps in a row] after each step above. */
    private static final double[][] EXPECTED = {{1024, 1}, {1024, 2}, {2048, 0}, {2048, 1}, {1024, 0}, {1024, 1},
            {1024, 2}, {2048, 0}, {1024, 0}, {512, 0}, {512, 1}};

    @Test
    void theDeviceRuleFollowsGradScaler() {
        try (NDManager manager = NDManager.newBaseManager()) {
            NDArray state = manager.create(new float[] {1024f, 0f});
            for (int i = 0; i < SKIPPED.length; i++) {
                NDArray flag = manager.create((float) SKIPPED[i]);
                state = GraphedStep.updatedScale(manager, state, flag, SETTINGS);
                float[] values = state.toFloatArray();
                assertEquals(EXPECTED[i][0], values[0], "scale after step " + (i + 1));
                assertEquals(EXPECTED[i][1], values[1], "good steps in a row after step " + (i + 1));
            }
        }
    }

    @Test
    void theHostFollowsTheDeviceAndCatchesADifference() {
        DynamicLossScale host = new DynamicLossScale(SETTINGS, true);
        for (int i = 0; i < SKIPPED.length; i++) {
            host.update(SKIPPED[i] == 1);
            host.confirm(new TrainStep.DeviceLossScale(0, EXPECTED[i][0], (long) EXPECTED[i][1]));
        }
        assertEquals(3, host.skippedSteps());
        assertThrows(IllegalStateException.class, () -> host.confirm(new TrainStep.DeviceLossScale(0, 1024, 1)));
    }

    @Test
    void aConstantScaleNeverMoves() {
        DynamicLossScale constant = DynamicLossScale.constant(1024);
        try (NDManager manager = NDManager.newBaseManager()) {
            NDArray state = manager.create(new float[] {1024f, 0f});
            for (int flag : SKIPPED) {
                state = GraphedStep.updatedScale(manager, state, manager.create((float) flag), constant.settings());
                constant.update(flag == 1);
            }
            assertEquals(1024f, state.toFloatArray()[0]);
            assertEquals(1024.0, constant.scale());
        }
    }
}
