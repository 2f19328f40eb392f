package io.anneal.toolkit.gradients;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.training.GradientCollector;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The TorchScript source travels with the class into the toolkit's jar, and each call does what it
 * says, against hand-computed values: loss = sum(a * ca) + sum(b * cb) gives gradients ca and cb.
 */
class GradientListsTest {

    @Test
    void normFlattenAndZeroOfKnownGradients() {
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray a = m.create(new float[] {1, 2, 3});
            NDArray b = m.create(new float[][] {{5}});
            a.setRequiresGradient(true);
            b.setRequiresGradient(true);
            try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                NDArray loss = a.mul(m.create(new float[] {3, 4, 0})).sum().add(b.mul(m.create(new float[][] {{12}})).sum());
                collector.backward(loss);
            }
            List<NDArray> parameters = List.of(a, b);
            assertEquals(13.0, GradientLists.norm(parameters), 1e-6); // sqrt(3^2 + 4^2 + 0^2 + 12^2)
            try (NDArray flat = GradientLists.flatten(parameters)) {
                assertArrayEquals(new float[] {3, 4, 0, 12}, flat.toFloatArray());
            }
            GradientLists.zero(parameters);
            assertEquals(0.0, GradientLists.norm(parameters));
        }
    }

    @Test
    void aParameterOutsideTheGraphCountsAsZeros() {
        // a parameter that requires a gradient but that the loss never reached (an unused head, a frozen
        // branch): DJL attached a gradient to it that backward never wrote
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray used = m.create(new float[] {1, 2});
            NDArray unused = m.create(new float[] {7, 7, 7});
            used.setRequiresGradient(true);
            unused.setRequiresGradient(true);
            try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                collector.backward(used.mul(m.create(new float[] {6, 8})).sum());
            }
            List<NDArray> parameters = List.of(used, unused);
            assertEquals(10.0, GradientLists.norm(parameters), 1e-6); // sqrt(6^2 + 8^2)
            try (NDArray flat = GradientLists.flatten(parameters)) {
                assertArrayEquals(new float[] {6, 8, 0, 0, 0}, flat.toFloatArray());
            }
            GradientLists.zero(parameters);
            assertEquals(0.0, GradientLists.norm(parameters));
        }
    }
}
