package io.anneal.toolkit.autograd;

import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Why the trainer casts through {@link DifferentiableCasts}, and that those casts carry gradients. */
class DifferentiableCastsTest {

    @Test
    void djlToTypeDetachesFromTheGraph() {
        // if this starts failing, DJL's cast became differentiable and DifferentiableCasts can go
        try (NDManager m = NDManager.newBaseManager(); GradientCollector c = m.getEngine().newGradientCollector()) {
            NDArray master = m.ones(new Shape(2));
            master.setRequiresGradient(true);
            EngineException e = assertThrows(EngineException.class,
                    () -> c.backward(master.toType(DataType.FLOAT16, false).sum()));
            assertTrue(e.getMessage().contains("does not require grad"), e.getMessage());
        }
    }

    @Test
    void float16RoundTripCarriesTheGradientOfAProduct() {
        // d/dw sum(3 * w) = 3 for every element, through float32 -> float16 -> float32
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray master = m.create(new float[] {0.5f, -2f, 7f});
            master.setRequiresGradient(true);
            try (GradientCollector c = m.getEngine().newGradientCollector()) {
                NDArray half = DifferentiableCasts.toFloat16(master);
                assertEquals(DataType.FLOAT16, half.getDataType());
                NDArray back = DifferentiableCasts.toFloat32(half.mul(3));
                assertEquals(DataType.FLOAT32, back.getDataType());
                assertArrayEquals(new float[] {1.5f, -6f, 21f}, back.toFloatArray());
                c.backward(back.sum());
            }
            assertArrayEquals(new float[] {3f, 3f, 3f}, master.getGradient().toFloatArray());
        }
    }
}
