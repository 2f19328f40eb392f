package io.anneal.schedules.optim;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.toolkit.gradients.GradientLists;
import io.anneal.api.optim.NamedParameter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A model's parameters as one flat float32 buffer on their device (the master weights), plus the
 * gather of their gradients into one flat buffer. Every optimizer of this plugin works on whole
 * buffers, so a step costs a handful of kernels instead of about ten per parameter tensor as DJL's
 * own optimizers do (DESIGN.md).
 *
 * <p>When every parameter is float32 (float32 master weights, also under float16 compute) the
 * model's arrays become views of the flat buffer: an update of the buffer is the update of the
 * model, with no copy back. Float16 parameters keep their own arrays and get the master weights
 * written back, cast, after each step.
 */
final class FlatParameters implements AutoCloseable {
    private final List<NamedParameter> parameters;
    private final NDArray[] modelArrays;
    private final List<NDArray> modelArrayList;
    /** The model's arrays are views of {@link #weights}. */
    private final boolean sharesWeights;
    private final long[] splitPoints;
    private final Shape[] shapes;
    private final DataType[] dataTypes;
    private final NDManager manager;
    private final long elements;
    /** The float32 master weights, parameter after parameter. */
    final NDArray weights;
    /** Per-element learning-rate factor, or {@code null} when every parameter's factor is 1. */
    final NDArray lrFactors;

    FlatParameters(List<NamedParameter> parameters) {
        if (parameters.isEmpty()) {
            throw new IllegalArgumentException("an optimizer needs at least one parameter");
        }
        this.parameters = List.copyOf(parameters);
        int n = parameters.size();
        modelArrays = new NDArray[n];
        shapes = new Shape[n];
        dataTypes = new DataType[n];
        splitPoints = new long[n - 1];
        long total = 0;
        boolean allFactorsOne = true;
        for (int i = 0; i < n; i++) {
            NamedParameter p = parameters.get(i);
            NDArray array = p.parameter().getArray();
            DataType type = array.getDataType();
            if (type != DataType.FLOAT32 && type != DataType.FLOAT16) {
                throw new IllegalArgumentException("parameter " + p.name() + " is " + type
                        + "; the optimizer keeps float32 master weights for float32 or float16 parameters only");
            }
            modelArrays[i] = array;
            shapes[i] = array.getShape();
            dataTypes[i] = type;
            if (i > 0) {
                splitPoints[i - 1] = total;
            }
            total += array.size();
            allFactorsOne &= p.lrFactor() == 1.0;
            if (!(p.lrFactor() > 0) || Double.isInfinite(p.lrFactor())) {
                throw new IllegalArgumentException("parameter " + p.name() + " has learning-rate factor "
                        + p.lrFactor() + "; expected a finite positive number");
            }
        }
        elements = total;
        NDArray first = modelArrays[0];
        manager = first.getManager().newSubManager(first.getDevice());
        NDList flat = new NDList(n);
        for (NDArray a : modelArrays) {
            flat.add(a.flatten().toType(DataType.FLOAT32, false));
        }
        weights = concatInto(flat);
        modelArrayList = List.of(modelArrays);
        sharesWeights = !hasReducedPrecision() && sameDevice();
        if (sharesWeights) {
            List<NDArray> views = views(weights);
            for (int i = 0; i < n; i++) {
                // the model's array object now holds the view (the old tensor is freed); a view of a
                // buffer that needs no gradient is a leaf, so it can require one
                modelArrays[i].intern(views.get(i));
                modelArrays[i].setRequiresGradient(true);
            }
        }
        if (allFactorsOne) {
            lrFactors = null;
        } else {
            NDList factors = new NDList(n);
            for (int i = 0; i < n; i++) {
                factors.add(weights.getManager().full(new Shape(modelArrays[i].size()),
                        (float) parameters.get(i).lrFactor(), DataType.FLOAT32));
            }
            lrFactors = concatInto(factors);
        }
    }

    /** Concatenates, closes the pieces, and keeps the result (outside any caller's NDScope). */
    private NDArray concatInto(NDList pieces) {
        NDArray result = pieces.size() == 1 ? pieces.get(0).duplicate() : NDArrays.concat(pieces);
        result.attach(manager);
        NDScope.unregister(result);
        pieces.close();
        return result;
    }

    private boolean sameDevice() {
        for (NDArray a : modelArrays) {
            if (!a.getDevice().equals(modelArrays[0].getDevice())) {
                return false;
            }
        }
        return true;
    }

    /** Whether the model's arrays are views of {@link #weights} (no write-back needed). */
    boolean sharesWeights() {
        return sharesWeights;
    }

    /** The learning-rate factor of parameter {@code i}. */
    double lrFactor(int i) {
        return parameters.get(i).lrFactor();
    }

    /** The model's parameter arrays, in buffer order. */
    List<NDArray> modelArrays() {
        return modelArrayList;
    }

    /**
     * Views of a flat buffer (the weights or a state buffer) in the parameters' shapes, one per
     * parameter, owned by this object: writing into a view writes into the buffer.
     */
    List<NDArray> views(NDArray buffer) {
        List<NDArray> views = new ArrayList<>(modelArrays.length);
        NDList slices = modelArrays.length == 1 ? new NDList(buffer.get(new NDIndex("..."))) : buffer.split(splitPoints);
        for (int i = 0; i < modelArrays.length; i++) {
            NDArray view = slices.get(i).reshape(shapes[i]);
            view.attach(manager);
            NDScope.unregister(view);
            views.add(view);
        }
        return views;
    }

    /** The global L2 norm of the gradients divided by {@code divisor}, in float32 (a device sync). */
    double gradientNorm(double divisor) {
        return GradientLists.norm(modelArrayList) / divisor;
    }

    /** True when some parameter is float16: the float32 master weights are then state of their own. */
    boolean hasReducedPrecision() {
        for (DataType t : dataTypes) {
            if (t != DataType.FLOAT32) {
                return true;
            }
        }
        return false;
    }

    long elements() {
        return elements;
    }

    int parameterCount() {
        return parameters.size();
    }

    /** A new zero buffer of the weights' size, owned by this object (optimizer moments). */
    NDArray zeros() {
        NDArray z = manager.zeros(new Shape(elements), DataType.FLOAT32);
        NDScope.unregister(z);
        return z;
    }

    /** A new buffer holding a copy of the master weights (the schedule-free z sequence starts there). */
    NDArray copyOfWeights() {
        NDArray copy = weights.duplicate();
        copy.attach(manager);
        NDScope.unregister(copy);
        return copy;
    }

    /**
     * The gradients of all parameters as one new float32 buffer (float16 gradients are cast), in
     * buffer order. Call inside an {@link NDScope}: the result is temporary.
     */
    NDArray gatherGradients() {
        return GradientLists.flatten(modelArrayList); // registered with the caller's NDScope
    }

    /** Writes the master weights into the model's own arrays, in place, cast to each one's type. */
    void writeBack() {
        if (sharesWeights) {
            return;
        }
        try (NDScope scope = new NDScope()) {
            scope.suppressNotUsedWarning();
            NDList slices = modelArrays.length == 1 ? new NDList(weights) : weights.split(splitPoints);
            for (int i = 0; i < modelArrays.length; i++) {
                NDArray value = slices.get(i).reshape(shapes[i]);
                if (dataTypes[i] != DataType.FLOAT32) {
                    value = value.toType(dataTypes[i], false);
                }
                modelArrays[i].set(new NDIndex("..."), value);
            }
        }
    }

    /** Saves one flat state buffer as {@code directory/name.npy}. */
    void save(NDArray buffer, Path directory, String name) throws IOException {
        try (NDScope scope = new NDScope()) {
            scope.suppressNotUsedWarning();
            NDArray host = buffer.toDevice(ai.djl.Device.cpu(), false);
            NpyFloat32.write(directory.resolve(name + ".npy"), host.toByteBuffer());
        }
    }

    /** Loads {@code directory/name.npy} into {@code buffer}, in place, checking its size first. */
    void load(NDArray buffer, Path directory, String name) throws IOException {
        ByteBuffer data = NpyFloat32.read(directory.resolve(name + ".npy"), elements);
        try (NDScope scope = new NDScope()) {
            scope.suppressNotUsedWarning();
            NDArray host = manager.create(data.asFloatBuffer(), new Shape(elements));
            buffer.set(new NDIndex("..."), host.toDevice(buffer.getDevice(), false));
        }
    }

    /** The names of the bound parameters, in buffer order (recorded with saved state). */
    List<String> names() {
        List<String> names = new ArrayList<>(parameters.size());
        for (NamedParameter p : parameters) {
            names.add(p.name());
        }
        return names;
    }

    @Override
    public void close() {
        manager.close();
    }
}
