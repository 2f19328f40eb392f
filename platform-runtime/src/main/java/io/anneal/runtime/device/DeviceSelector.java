package io.anneal.runtime.device;

import ai.djl.Device;
import ai.djl.engine.Engine;
import io.anneal.api.InputException;
import io.anneal.api.torchscript.Libtorch;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code pipeline.device}: {@code auto} is the GPU when libtorch sees one, else the CPU. The choice
 * comes with the one line every run prints first: the engine, the libtorch version and flavour,
 * the device and why, and, when a GPU machine runs a CPU libtorch, how to fix it.
 */
public final class DeviceSelector {
    /** What a CPU-only libtorch on a GPU machine should do instead (README, GPU). */
    static final String GPU_FIX = "run bin/anneal --torch DIR with DIR a CUDA torch 2.7.1 "
            + "(pip install torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128; README, GPU)";
    private static final Path NVIDIA_DRIVER = Path.of("/proc/driver/nvidia/version");

    private DeviceSelector() {
    }

    /** The device and the line that says which, on what and why. */
    public record Choice(Device device, String line) {
    }

    /** Chooses the device; only {@code auto} and {@code gpu} start the engine to count GPUs. */
    public static Device select(String setting) {
        return choose(setting).device();
    }

    public static Choice choose(String setting) {
        if (!setting.equals("cpu") && !setting.equals("gpu") && !setting.equals("auto")) {
            throw new InputException("pipeline.device: expected one of auto, cpu, gpu, found '" + setting + "'");
        }
        Libtorch libtorch = Libtorch.current();
        int gpus = Engine.getInstance().getGpuCount();
        return decide(setting, libtorch, gpus, Files.exists(NVIDIA_DRIVER));
    }

    /** The decision itself, given what the machine has (separate so that tests can give any machine). */
    static Choice decide(String setting, Libtorch libtorch, int gpus, boolean nvidiaDriver) {
        String engine = "torch: DJL " + Engine.getDjlVersion() + " PyTorch engine, " + libtorch.describe() + "; device ";
        String seen = gpus + " GPU" + (gpus == 1 ? "" : "s") + " seen by libtorch";
        switch (setting) {
            case "cpu":
                return new Choice(Device.cpu(), engine + "cpu (pipeline.device = cpu)");
            case "gpu":
                if (gpus == 0) {
                    throw new InputException("pipeline.device = gpu, but " + libtorch.describe() + " sees no GPU; "
                            + noGpuWhy(libtorch, nvidiaDriver) + ", or use device = auto or cpu");
                }
                return new Choice(Device.gpu(), engine + "gpu(0) (pipeline.device = gpu; " + seen + ")");
            default:
                if (gpus > 0) {
                    return new Choice(Device.gpu(), engine + "gpu(0) (auto: " + seen + ")");
                }
                return new Choice(Device.cpu(), engine + "cpu (auto: " + noGpuWhy(libtorch, nvidiaDriver) + ")");
        }
    }

    private static String noGpuWhy(Libtorch libtorch, boolean nvidiaDriver) {
        if (libtorch.cuda()) {
            return "a CUDA libtorch that finds no GPU (check the driver and CUDA_VISIBLE_DEVICES)";
        }
        if (nvidiaDriver) {
            return "this machine has an NVIDIA driver but this libtorch is the CPU build; for the GPU, " + GPU_FIX;
        }
        return "no NVIDIA driver on this machine";
    }
}
