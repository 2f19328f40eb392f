package io.anneal.toolkit.torchscript;

import ai.djl.Device;
import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import io.anneal.api.Experimental;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A TorchScript class compiled by libtorch from its source (see {@link TorchScriptArchive}) and
 * called through DJL: many tensor operations in one JNI call, with PyTorch operations DJL does
 * not expose ({@code scaled_dot_product_attention}, {@code Tensor.grad} of a list of parameters).
 *
 * <p>Arguments follow DJL's naming of the input arrays: an array named {@code d.key} goes into the
 * {@code Dict[str, Tensor]} argument {@code d} under {@code key}; arrays named {@code l[]} form one
 * {@code List[Tensor]} argument; other arrays are {@code Tensor} arguments, in order. Names are set
 * for the call and restored after it, so parameter arrays can be passed as they are.
 *
 * <p>Compiled modules are cached for the life of the JVM, one per class, source, attributes and
 * device: compiling costs tens of milliseconds and a module holds no tensors, so callers share
 * one and {@link #close()} is a no-op. (Corrupt gradients once blamed on deleting modules came
 * from DJL's number operands; see {@link io.anneal.toolkit.autograd.DeviceScalars}.)
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.torchscript before API 1.2 split it off); calls go through DJL's PyTorch engine")
public final class TorchScriptModule implements AutoCloseable {
    /**
     * DJL's switch for libtorch's graph-executor optimisations (profiling, fusion, symbolic
     * autodiff), applied before every TorchScript call. Off unless the user set it: the symbolic
     * gradient of {@code linear} does not cast a float32 gradient back to a float16 input (an add
     * promoting float16 to float32 feeds it), so float16 backward fails there; plain interpretation
     * runs each operation with eager autograd, which handles type promotion.
     */
    private static final String GRAPH_OPTIMIZER = "ai.djl.pytorch.graph_optimizer";

    private static final Map<String, TorchScriptModule> COMPILED = new ConcurrentHashMap<>();

    private final Model model;
    private final Block block;
    private final Map<String, NDArray> methodMarkers = new ConcurrentHashMap<>();

    private TorchScriptModule(Model model) {
        this.model = model;
        this.block = model.getBlock();
    }

    /**
     * Compiles the source read from {@code source} (a resource of the caller's jar:
     * {@code getClass().getResourceAsStream("X.torchscript")}; null means it is missing), closing it.
     */
    public static TorchScriptModule compile(String className, InputStream source, Map<String, Object> attributes,
            Device device) {
        if (source == null) {
            throw new IllegalStateException("the TorchScript source of " + className + " is missing from its jar");
        }
        try (source) {
            return compile(className, new String(source.readAllBytes(), StandardCharsets.UTF_8), attributes, device);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the TorchScript source of " + className, e);
        }
    }

    /** Compiles {@code source}, which defines class {@code className}, with the attribute values given. */
    public static TorchScriptModule compile(String className, String source, Map<String, Object> attributes,
            Device device) {
        String key = className + '\n' + device + '\n' + new java.util.TreeMap<>(attributes) + '\n' + source;
        return COMPILED.computeIfAbsent(key, k -> load(className, source, attributes, device));
    }

    private static TorchScriptModule load(String className, String source, Map<String, Object> attributes,
            Device device) {
        if (System.getProperty(GRAPH_OPTIMIZER) == null) {
            System.setProperty(GRAPH_OPTIMIZER, "false");
        }
        byte[] archive = TorchScriptArchive.write(className, source, attributes);
        Model model = Model.newInstance(className, device, "PyTorch");
        try {
            model.load(new ByteArrayInputStream(archive));
        } catch (IOException | MalformedModelException | RuntimeException e) {
            model.close();
            throw new IllegalStateException("libtorch refused the TorchScript class " + className + ": " + e.getMessage(), e);
        }
        return new TorchScriptModule(model);
    }

    /**
     * Runs {@code method} on the inputs, each named by {@code names} (null: a plain Tensor argument);
     * with {@code training} false the call runs without autograd. The results live in the first
     * input's manager.
     */
    public NDList call(String method, List<NDArray> inputs, List<String> names, boolean training) {
        NDList list = new NDList(inputs.size() + 1);
        String[] previous = new String[inputs.size()];
        for (int i = 0; i < inputs.size(); i++) {
            NDArray array = inputs.get(i);
            previous[i] = array.getName();
            array.setName(names.get(i));
            list.add(array);
        }
        if (!method.equals("forward")) {
            list.add(methodMarkers.computeIfAbsent(method, m -> {
                NDArray marker = model.getNDManager().zeros(new Shape(1));
                marker.setName("module_method:" + m);
                return marker;
            }));
        }
        try {
            return block.forward(new ParameterStore(inputs.get(0).getManager(), false), list, training);
        } finally {
            for (int i = inputs.size() - 1; i >= 0; i--) { // backwards: an array passed twice gets its own name back
                inputs.get(i).setName(previous[i]);
            }
        }
    }

    /** Nothing: the compiled module stays cached for the JVM (see the class comment). */
    @Override
    public void close() {
    }
}
