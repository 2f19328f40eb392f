package io.anneal.toolkit.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import java.nio.ByteBuffer;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;

/**
 * Why Anneal's code multiplies by {@link DeviceScalars} and never by a Java number: a garbage
 * collection between forward and backward corrupts the gradient of {@code x.mul(3f)} on CPU.
 */
class DeviceScalarsTest {
    private static final int PASSES = 40;

    @Test
    void djlNumberOperandIsReadAfterItsMemoryWasFreed() {
        // if this starts failing, DJL keeps number operands alive and DeviceScalars can go
        int corrupt = corruptGradients((m, x) -> x.mul(3f));
        assertTrue(corrupt > 0, "expected DJL's mul(Number) to give corrupt gradients after a collection, got none in "
                + PASSES);
    }

    @Test
    void deviceScalarSurvivesACollectionBeforeBackward() {
        assertEquals(0, corruptGradients((m, x) -> x.mul(DeviceScalars.of(m, 3))));
    }

    @Test
    void cachedScalarsAreMadeOnceAndDoNotPromoteFloat16() {
        try (NDManager m = NDManager.newBaseManager()) {
            DeviceScalars scalars = new DeviceScalars(m);
            NDArray third = scalars.get(1.0 / 3);
            assertSame(third, scalars.get(1.0 / 3));
            assertEquals(new Shape(), third.getShape());
            assertEquals((float) (1.0 / 3), third.getFloat());
            NDArray half = m.create(new float[] {1.5f, -6f}).toType(DataType.FLOAT16, false);
            NDArray product = half.mul(scalars.get(2));
            assertEquals(DataType.FLOAT16, product.getDataType());
            assertEquals(-12f, product.toType(DataType.FLOAT32, false).getFloat(1));
        }
    }

    /**
     * How many of {@link #PASSES} backward passes of sum(op(x)) with op(x) = 3x give a gradient
     * other than 3, when the JVM collects garbage and reuses freed native memory in between.
     */
    private static int corruptGradients(BiFunction<NDManager, NDArray, NDArray> timesThree) {
        int corrupt = 0;
        for (int pass = 0; pass < PASSES; pass++) {
            try (NDManager m = NDManager.newBaseManager()) {
                NDArray x = m.ones(new Shape(8));
                x.setRequiresGradient(true);
                try (GradientCollector collector = m.getEngine().newGradientCollector()) {
                    NDArray y = timesThree.apply(m, x);
                    collectAndReuseFreedMemory();
                    collector.backward(y.sum());
                }
                for (float g : x.getGradient().toFloatArray()) {
                    if (g != 3f) {
                        corrupt++;
                        break;
                    }
                }
            }
        }
        return corrupt;
    }

    private static void collectAndReuseFreedMemory() {
        System.gc();
        try {
            Thread.sleep(5); // the Cleaner thread frees the direct buffers of collected arrays
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (int i = 0; i < 200; i++) {
            ByteBuffer.allocateDirect(4).putFloat(0, 1e31f); // 4-byte blocks, as a float scalar's
        }
    }
}
