package io.anneal.schedules.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.Shape;
import io.anneal.api.InputException;
import io.anneal.api.config.ConfigException;
import io.anneal.api.optim.DeviceStep;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepRequest;
import io.anneal.api.optim.StepResult;
import io.anneal.testkit.TestConfig;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdamWTest {

    private static OptimizerFactory adamw(String settings) {
        return (OptimizerFactory) OptimizerFactories.all().get(0)
                .create(TestConfig.block("optimizer-factory", "type = adamw\n" + settings), null);
    }

    /**
     * Step 1 by hand (torch docs / Loshchilov and Hutter Alg. 2): m1 = (1-b1) g, v1 = (1-b2) g^2, so
     * m1/(1-b1) = g and sqrt(v1/(1-b2)) = |g|; p1 = p0 (1 - lr wd) - lr g / (|g| + eps).
     * lr = 1e-2, wd = 0.1, eps = 1e-8:
     *   p0 = 1.0,  g = 0.1:  0.999 - 0.01 * 0.1/0.10000001 = 0.98900000100 (to 1e-10)
     *   p0 = -2.0, g = -0.2: -1.998 + 0.01 * 0.2/0.20000001 = -1.98800000005
     *   p0 = 0.5,  g = 0:    0.4995 (no gradient step, only the decay)
     */
    @Test
    void firstStepMatchesTheClosedForm() {
        try (TinyModel model = new TinyModel().add("w", 1.0f, -2.0f, 0.5f);
             ParameterOptimizer opt = adamw("weight-decay = 0.1").bind(model.parameters)) {
            model.setGradients(new float[] {0.1f, -0.2f, 0f});
            StepResult r = opt.step(new StepRequest(1e-2, 1, 0));
            assertFalse(r.skipped());
            assertEquals(Math.sqrt(0.1 * 0.1 + 0.2 * 0.2), r.gradNorm(), 1e-7);
            assertArrayEquals(new float[] {0.989000001f, -1.98800000005f, 0.4995f}, model.values(0), 1e-7f);
            assertEquals(1, opt.steps());
        }
    }

    /** A plain double-precision AdamW loop written from the torch.optim.AdamW documentation. */
    private static final class ReferenceAdamW {
        final double beta1, beta2, eps, wd;
        final double[] p, m, v;
        int t;

        ReferenceAdamW(double[] p, double beta1, double beta2, double eps, double wd) {
            this.p = p.clone();
            this.m = new double[p.length];
            this.v = new double[p.length];
            this.beta1 = beta1;
            this.beta2 = beta2;
            this.eps = eps;
            this.wd = wd;
        }

        void step(double[] g, double lr, double[] lrFactor) {
            t++;
            for (int i = 0; i < p.length; i++) {
                double lri = lr * lrFactor[i];
                p[i] -= lri * wd * p[i];
                m[i] = beta1 * m[i] + (1 - beta1) * g[i];
                v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
                double mHat = m[i] / (1 - Math.pow(beta1, t));
                double vHat = v[i] / (1 - Math.pow(beta2, t));
                p[i] -= lri * mHat / (Math.sqrt(vHat) + eps);
            }
        }
    }

    private static float[] gradients(int step, int n) {
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            g[i] = (float) (Math.sin(1.3 * step + 0.7 * i) * (0.5 + i) * 0.1); // varied signs and magnitudes
        }
        return g;
    }

    private static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    /**
     * Float32 parameters step in PyTorch's fused kernel (the model's arrays are views of the flat
     * weights); a float16 parameter makes the optimizer keep separate master weights and step in
     * whole-buffer operations. Both must follow the same AdamW: the float32 parameter agrees to
     * float32 rounding, the float16 one to float16 rounding of the same master weight.
     */
    @Test
    void fusedAndWholeBufferStepsAgree() {
        float[] a0 = {0.5f, -0.25f, 1.0f, 0.125f};
        float[] b0 = {2.0f, -1.5f};
        try (TinyModel fused = new TinyModel().add("a", 1.0, new Shape(4), a0).add("b", 1.0, new Shape(2), b0);
             TinyModel mixed = new TinyModel().add("a", 1.0, new Shape(4), a0).addFloat16("b", new Shape(2), b0);
             ParameterOptimizer fusedOpt = adamw("weight-decay = 0.1").bind(fused.parameters);
             ParameterOptimizer mixedOpt = adamw("weight-decay = 0.1").bind(mixed.parameters)) {
            for (int step = 1; step <= 3; step++) {
                float[] ga = {0.5f * step, -0.25f, 0.75f, -1f};
                float[] gb = {0.125f, -2f * step};
                fused.setGradients(ga, gb);
                mixed.setGradients(ga, gb);
                fusedOpt.step(new StepRequest(0.05, 2, 1.0));
                mixedOpt.step(new StepRequest(0.05, 2, 1.0));
                assertArrayEquals(fused.values(0), mixed.values(0), 1e-6f, "float32 parameter after step " + step);
                float[] expectedB = fused.values(1);
                float[] b = mixed.values(1);
                for (int i = 0; i < 2; i++) {
                    assertEquals(expectedB[i], b[i], Math.abs(expectedB[i]) * 1e-3, "float16 parameter after step " + step);
                }
            }
        }
    }

    /** Steps 1..5 against the plain loop, with two parameters, one at lrFactor 0.5 (a muP group). */
    @Test
    void fiveStepsMatchAPlainDoubleLoopWithLrFactors() {
        float[] a0 = {0.3f, -0.7f, 1.1f, 0.05f};
        float[] b0 = {2.0f, -1.5f};
        double[] factor = {1, 1, 1, 1, 0.5, 0.5};
        double[] all0 = toDouble(new float[] {0.3f, -0.7f, 1.1f, 0.05f, 2.0f, -1.5f});
        ReferenceAdamW ref = new ReferenceAdamW(all0, 0.9, 0.95, 1e-8, 0.01);
        try (TinyModel model = new TinyModel().add("a", 1.0, new Shape(2, 2), a0).add("b", 0.5, new Shape(2), b0);
             ParameterOptimizer opt = adamw("beta2 = 0.95\nweight-decay = 0.01").bind(model.parameters)) {
            for (int step = 1; step <= 5; step++) {
                float[] g = gradients(step, 6);
                model.setGradients(new float[] {g[0], g[1], g[2], g[3]}, new float[] {g[4], g[5]});
                double lr = 1e-2 * step; // the schedule changes the LR each step
                opt.step(new StepRequest(lr, 1, 0));
                ref.step(toDouble(g), lr, factor);
                float[] a = model.values(0);
                float[] b = model.values(1);
                for (int i = 0; i < 4; i++) {
                    assertEquals(ref.p[i], a[i], 2e-6, "a[" + i + "] after step " + step);
                }
                for (int i = 0; i < 2; i++) {
                    assertEquals(ref.p[4 + i], b[i], 2e-6, "b[" + i + "] after step " + step);
                }
            }
        }
    }

    /**
     * Clipping as torch.nn.utils.clip_grad_norm_: coef = max/(norm + 1e-6) when below 1. Checked
     * through the reference loop fed with the clipped gradients over 3 steps (Adam is scale
     * invariant only at step 1, so steps 2 and 3 see the clip), and the gradient divisor
     * (a loss scale of 1024) undone first.
     */
    @Test
    void clipsToTheGlobalNormAfterUnscaling() {
        float[] p0 = {0.5f, -0.5f};
        ReferenceAdamW ref = new ReferenceAdamW(toDouble(p0), 0.9, 0.95, 1e-8, 0);
        try (TinyModel model = new TinyModel().add("w", p0);
             ParameterOptimizer opt = adamw("").bind(model.parameters)) {
            double[][] grads = {{3, 4}, {0.3, 0.4}, {-6, 8}};
            for (double[] g : grads) {
                model.setGradients(new float[] {(float) (g[0] * 1024), (float) (g[1] * 1024)});
                StepResult r = opt.step(new StepRequest(0.1, 1024, 1.0));
                double norm = Math.hypot(g[0], g[1]);
                assertEquals(norm, r.gradNorm(), 1e-5 * norm, "grad_norm is reported before clipping");
                double coef = Math.min(1, 1.0 / (norm + 1e-6));
                ref.step(new double[] {g[0] * coef, g[1] * coef}, 0.1, new double[] {1, 1});
                assertArrayEquals(new float[] {(float) ref.p[0], (float) ref.p[1]}, model.values(0), 2e-6f);
            }
        }
    }

    /** An inf or NaN gradient skips the step: parameters, moments and the step count stay. */
    @Test
    void skipsNonFiniteGradientsLeavingEverythingUntouched() {
        float[] p0 = {1.0f, 2.0f};
        try (TinyModel model = new TinyModel().add("w", p0);
             TinyModel fresh = new TinyModel().add("w", p0);
             ParameterOptimizer opt = adamw("").bind(model.parameters);
             ParameterOptimizer freshOpt = adamw("").bind(fresh.parameters)) {
            model.setGradients(new float[] {Float.POSITIVE_INFINITY, 1f});
            StepResult inf = opt.step(new StepRequest(0.1, 1, 1.0));
            assertTrue(inf.skipped());
            assertArrayEquals(p0, model.values(0));
            model.setGradients(new float[] {Float.NaN, 1f});
            assertTrue(opt.step(new StepRequest(0.1, 1, 1.0)).skipped());
            assertEquals(0, opt.steps());
            // the next good step is a first step (bias correction t = 1, zero moments)
            model.setGradients(new float[] {0.5f, -0.25f});
            opt.step(new StepRequest(0.1, 1, 1.0));
            fresh.setGradients(new float[] {0.5f, -0.25f});
            freshOpt.step(new StepRequest(0.1, 1, 1.0));
            assertArrayEquals(fresh.values(0), model.values(0));
            assertEquals(1, opt.steps());
        }
    }

    /**
     * The device-side step (what a CUDA graph captures) is the same AdamW as {@link ParameterOptimizer#step}:
     * over 3 steps with a loss-scale divisor of 1024, clipping to 1.0 (active at steps 1 and 3) and a
     * muP group at lrFactor 0.5, the reference loop fed with the unscaled, clipped gradients gives the
     * weights; the norm and the skip flag come back through {@code outcome()}.
     */
    @Test
    void deviceStepFollowsTheReferenceLoopWithDivisorClippingAndGroups() {
        float[] a0 = {0.5f, -0.5f};
        float[] b0 = {1.5f};
        ReferenceAdamW ref = new ReferenceAdamW(toDouble(new float[] {0.5f, -0.5f, 1.5f}), 0.9, 0.95, 1e-8, 0.01);
        try (TinyModel model = new TinyModel().add("a", 1.0, new Shape(2), a0).add("b", 0.5, new Shape(1), b0);
             ParameterOptimizer opt = adamw("weight-decay = 0.01").bind(model.parameters);
             DeviceStep device = opt.deviceStep().orElseThrow()) {
            double[][] grads = {{3, 4, 0}, {0.3, 0.4, 0.1}, {-6, 8, 2}};
            for (int step = 0; step < grads.length; step++) {
                double[] g = grads[step];
                model.setGradients(new float[] {(float) (g[0] * 1024), (float) (g[1] * 1024)}, new float[] {(float) (g[2] * 1024)});
                device.inputs().set(new float[] {0.1f, 1024f, 1.0f});
                device.enqueue();
                float[] outcome = device.outcome().toFloatArray();
                device.completed(outcome[DeviceStep.SKIPPED] != 0f);
                double norm = Math.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
                assertEquals(norm, outcome[DeviceStep.GRAD_NORM], 1e-5 * norm, "grad_norm at step " + (step + 1));
                assertEquals(0f, outcome[DeviceStep.SKIPPED]);
                double coef = Math.min(1, 1.0 / (norm + 1e-6));
                ref.step(new double[] {g[0] * coef, g[1] * coef, g[2] * coef}, 0.1, new double[] {1, 1, 0.5});
                assertArrayEquals(new float[] {(float) ref.p[0], (float) ref.p[1]}, model.values(0), 2e-6f, "a after step " + (step + 1));
                assertEquals(ref.p[2], model.values(1)[0], 2e-6, "b after step " + (step + 1));
            }
            assertEquals(3, opt.steps());
        }
    }

    /**
     * A non-finite gradient: the device step reports it, leaves weights and moments as they were and
     * does not count the step, so the next good step is a first step (bias correction t = 1).
     */
    @Test
    void deviceStepSkipsNonFiniteGradientsOnTheDevice() {
        float[] p0 = {1.0f, 2.0f};
        try (TinyModel model = new TinyModel().add("w", p0);
             TinyModel fresh = new TinyModel().add("w", p0);
             ParameterOptimizer opt = adamw("").bind(model.parameters);
             ParameterOptimizer freshOpt = adamw("").bind(fresh.parameters);
             DeviceStep device = opt.deviceStep().orElseThrow()) {
            device.inputs().set(new float[] {0.1f, 1f, 1.0f});
            model.setGradients(new float[] {Float.NaN, 1f});
            device.enqueue();
            float[] outcome = device.outcome().toFloatArray();
            assertTrue(Float.isNaN(outcome[DeviceStep.GRAD_NORM]));
            assertEquals(1f, outcome[DeviceStep.SKIPPED]);
            device.completed(true);
            assertArrayEquals(p0, model.values(0));
            assertEquals(0, opt.steps());
            model.setGradients(new float[] {0.5f, -0.25f});
            device.enqueue();
            device.completed(device.outcome().toFloatArray()[DeviceStep.SKIPPED] != 0f);
            fresh.setGradients(new float[] {0.5f, -0.25f});
            freshOpt.step(new StepRequest(0.1, 1, 1.0));
            assertArrayEquals(fresh.values(0), model.values(0), 1e-7f);
            assertEquals(1, opt.steps());
        }
    }

    /** Save after 2 steps, load into a new optimizer: step 3 is the same as without the interruption. */
    @Test
    void saveAndLoadResumeExactly(@TempDir Path dir) throws Exception {
        float[] p0 = {0.2f, -0.4f, 0.6f};
        try (TinyModel a = new TinyModel().add("w", p0);
             ParameterOptimizer optA = adamw("").bind(a.parameters)) {
            for (int s = 1; s <= 2; s++) {
                a.setGradients(gradients(s, 3));
                optA.step(new StepRequest(0.05, 1, 0));
            }
            optA.save(dir);
            float[] afterTwo = a.values(0);
            try (TinyModel b = new TinyModel().add("w", afterTwo);
                 ParameterOptimizer optB = adamw("").bind(b.parameters)) {
                optB.load(dir);
                assertEquals(2, optB.steps());
                a.setGradients(gradients(3, 3));
                optA.step(new StepRequest(0.05, 1, 0));
                b.setGradients(gradients(3, 3));
                optB.step(new StepRequest(0.05, 1, 0));
                assertArrayEquals(a.values(0), b.values(0));
            }
            try (TinyModel other = new TinyModel().add("w", 1f, 2f);
                 ParameterOptimizer optC = adamw("").bind(other.parameters)) {
                InputException e = assertThrows(InputException.class, () -> optC.load(dir));
                assertTrue(e.getMessage().contains("elements: expected 2"), e.getMessage());
            }
        }
    }

    @Test
    void rejectsBadHyperparametersWithThePath() {
        ConfigException e = assertThrows(ConfigException.class, () -> adamw("beta2 = 1.0"));
        assertTrue(e.getMessage().contains("optimizer-factory.beta2: expected a number in [0, 1)"), e.getMessage());
        assertTrue(e.getMessage().contains("test.conf"), e.getMessage());
        assertThrows(ConfigException.class, () -> adamw("eps = 0"));
        assertThrows(ConfigException.class, () -> adamw("weight-decay = -0.1"));
    }
}
