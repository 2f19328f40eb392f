package io.anneal.runtime.train;

import java.util.Locale;

/**
 * The dynamic loss scale of float16 training, with torch.amp.GradScaler's update rule
 * ({@code torch/amp/grad_scaler.py}, {@code _amp_update_scale_}): a step with non-finite gradients
 * multiplies the scale by {@code backoff} and resets the count of good steps; after
 * {@code growthInterval} good steps in a row the scale is multiplied by {@code growth}.
 * Without loss scaling (float32, TF32) the scale stays 1, but skipped steps are still counted.
 * While CUDA graph steps are in flight the device applies the same rule ({@link GraphedStep}) and
 * this object follows it one outcome later ({@link #confirm}).
 */
public final class DynamicLossScale {
    private final LossScaleSettings settings;
    private final boolean enabled;
    private double scale;
    private long goodStepsInARow;
    private long skippedSteps;
    private int consecutiveSkips;

    DynamicLossScale(LossScaleSettings settings, boolean enabled) {
        this.settings = settings;
        this.enabled = enabled;
        this.scale = enabled ? settings.initial() : 1.0;
    }

    /** A scale that never changes (a benchmark's): no growth, no backoff, never diverged. */
    public static DynamicLossScale constant(double scale) {
        return new DynamicLossScale(new LossScaleSettings(scale, Integer.MAX_VALUE, 1.0, 1.0, Integer.MAX_VALUE), true);
    }

    boolean enabled() {
        return enabled;
    }

    LossScaleSettings settings() {
        return settings;
    }

    /** The factor the loss is multiplied by before the backward pass (and gradients divided by). */
    public double scale() {
        return scale;
    }

    long skippedSteps() {
        return skippedSteps;
    }

    long goodStepsInARow() {
        return goodStepsInARow;
    }

    int consecutiveSkips() {
        return consecutiveSkips;
    }

    /** Records the outcome of one optimizer step. */
    void update(boolean skipped) {
        if (skipped) {
            skippedSteps++;
            consecutiveSkips++;
            goodStepsInARow = 0;
            if (enabled) {
                scale *= settings.backoff();
            }
            return;
        }
        consecutiveSkips = 0;
        goodStepsInARow++;
        if (enabled && goodStepsInARow == settings.growthInterval()) {
            scale *= settings.growth();
            goodStepsInARow = 0;
        }
    }

    /** True when so many steps in a row were skipped that the run is diverging, not just overflowing. */
    boolean diverged() {
        return consecutiveSkips >= settings.maxConsecutiveSkips();
    }

    /**
     * Checks that the device's state after a replayed step ({@link TrainStep.DeviceLossScale}) is this
     * object's after {@link #update} of the same step: they apply one rule to one sequence of skip
     * flags, so a difference is a bug, never a numerical effect (the scale is a power of two times
     * the initial one, exact in float32).
     */
    void confirm(TrainStep.DeviceLossScale device) {
        boolean same = (float) scale == (float) device.after()
                && (!enabled || goodStepsInARow == device.goodStepsInARow());
        if (!same) {
            throw new IllegalStateException(String.format(Locale.ROOT, "the loss scale on the device "
                    + "(%s, %d good steps in a row) differs from the host's (%s, %d)", device.after(),
                    device.goodStepsInARow(), scale, goodStepsInARow));
        }
    }

    /** Restores the counters written by a checkpoint. */
    void restore(double savedScale, long savedGoodStepsInARow, long savedSkippedSteps, int savedConsecutiveSkips) {
        this.scale = savedScale;
        this.goodStepsInARow = savedGoodStepsInARow;
        this.skippedSteps = savedSkippedSteps;
        this.consecutiveSkips = savedConsecutiveSkips;
    }
}
