package io.anneal.schedules.optim;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import io.anneal.api.optim.NamedParameter;
import java.util.ArrayList;
import java.util.List;

/** Parameters on the CPU engine whose gradients a test sets exactly (backward of sum(p * G) gives G). */
final class TinyModel implements AutoCloseable {
    final NDManager manager = NDManager.newBaseManager(ai.djl.Device.cpu(), "PyTorch");
    final List<NamedParameter> parameters = new ArrayList<>();

    TinyModel add(String name, double lrFactor, Shape shape, float... values) {
        NDArray array = manager.create(values, shape);
        array.setRequiresGradient(true);
        Parameter p = Parameter.builder().setName(name).setType(Parameter.Type.WEIGHT).optShape(shape).optArray(array).build();
        parameters.add(new NamedParameter(name, p, lrFactor));
        return this;
    }

    /** A float16 parameter (the optimizer then keeps separate float32 master weights). */
    TinyModel addFloat16(String name, Shape shape, float... values) {
        NDArray array = manager.create(values, shape).toType(ai.djl.ndarray.types.DataType.FLOAT16, false);
        array.setRequiresGradient(true);
        Parameter p = Parameter.builder().setName(name).setType(Parameter.Type.WEIGHT).optShape(shape).optArray(array).build();
        parameters.add(new NamedParameter(name, p, 1.0));
        return this;
    }

    TinyModel add(String name, float... values) {
        return add(name, 1.0, new Shape(values.length), values);
    }

    /**
     * Sets every parameter's gradient to the given values. Zeroed by assignment, not by the
     * collector's zeroGradients (which subtracts: an inf gradient would become NaN, and it zeroes
     * every array of the engine).
     */
    void setGradients(float[]... grads) {
        for (NamedParameter p : parameters) {
            NDArray w = p.parameter().getArray();
            if (w.hasGradient()) {
                try (NDArray g = w.getGradient()) {
                    g.set(new ai.djl.ndarray.index.NDIndex("..."), 0);
                } catch (IllegalStateException noGradientYet) {
                    // before the first backward there is nothing to zero
                }
            }
        }
        try (NDManager scratch = manager.newSubManager();
             GradientCollector collector = Engine.getEngine("PyTorch").newGradientCollector()) {
            NDArray loss = null;
            for (int i = 0; i < parameters.size(); i++) {
                NDArray w = parameters.get(i).parameter().getArray();
                NDArray term = w.mul(scratch.create(grads[i], w.getShape()).toType(w.getDataType(), false)).sum();
                loss = loss == null ? term : loss.add(term);
            }
            collector.backward(loss);
        }
    }

    float[] values(int parameter) {
        return parameters.get(parameter).parameter().getArray().toType(ai.djl.ndarray.types.DataType.FLOAT32, false)
                .toFloatArray();
    }

    @Override
    public void close() {
        manager.close();
    }
}
