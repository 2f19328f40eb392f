package io.anneal.toolkit.gradients;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import io.anneal.api.Experimental;
import io.anneal.toolkit.torchscript.TorchScriptModule;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Whole-model gradient bookkeeping, each in one libtorch call ({@code GradientLists.torchscript})
 * instead of two or three JNI calls per parameter tensor: on a GPU those calls, not the arithmetic,
 * were the optimizer's cost (about 1,400 calls and 32 ms a step for a 291M model on an H100).
 * The parameters must share one device; a parameter without a gradient counts as zeros.
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.optim before API 1.2 split it off); TorchScript through DJL")
public final class GradientLists {
    private static final String LIST = "params[]";
    private static final Map<Device, TorchScriptModule> MODULES = new ConcurrentHashMap<>();

    private GradientLists() {
    }

    /** The global L2 norm of the gradients, reduced in float32 (a device synchronisation). */
    public static double norm(List<NDArray> parameters) {
        try (NDList result = call("forward", parameters, false)) {
            return result.singletonOrThrow().getFloat();
        }
    }

    /** Writes zeros into every gradient: inf and NaN go too (DJL's zeroGradients subtracts, which keeps them). */
    public static void zero(List<NDArray> parameters) {
        call("zero", parameters, false).close();
    }

    /**
     * The gradients as one new flat float32 array, in parameter order, in the first parameter's
     * manager (the caller closes it). It can be updated in place.
     */
    public static NDArray flatten(List<NDArray> parameters) {
        // with autograd on: a result made in inference mode could not be updated in place later
        return call("flatten", parameters, true).singletonOrThrow();
    }

    private static NDList call(String method, List<NDArray> parameters, boolean autograd) {
        if (parameters.isEmpty()) {
            throw new IllegalArgumentException("no parameters");
        }
        TorchScriptModule module = MODULES.computeIfAbsent(parameters.get(0).getDevice(),
                device -> TorchScriptModule.compile("GradientLists",
                        GradientLists.class.getResourceAsStream("GradientLists.torchscript"),
                        Map.of("training", false), device));
        return module.call(method, parameters, Collections.nCopies(parameters.size(), LIST), autograd);
    }
}
