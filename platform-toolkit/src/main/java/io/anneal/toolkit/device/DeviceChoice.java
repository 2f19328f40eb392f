package io.anneal.toolkit.device;

import ai.djl.Device;
import ai.djl.engine.Engine;
import io.anneal.api.InputException;
import io.anneal.api.Experimental;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The device setting ({@code pipeline.device}, a command's {@code --device}): {@code auto} is the
 * GPU when libtorch sees one, else the CPU. The choice comes with the one line every run and every
 * command that touches tensors prints first: the engine, the libtorch version and flavour, the
 * device and why, and, when a GPU machine runs a CPU libtorch, how to fix it.
 *
 * @param device the device chosen
 * @param line   the line that says which, on what and why
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.torchscript before API 1.2 split it off); its line's wording may change")
public record DeviceChoice(Device device, String line) {
    /** What a CPU-only libtorch on a GPU machine should do instead (README, GPU). */
    private static final String GPU_FIX = "run bin/anneal --torch DIR with DIR a CUDA torch 2.7.1 "
            + "(pip install torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128; README, GPU)";
    /** Present where an NVIDIA driver is loaded (Linux); its first line names the driver version. */
    public static final Path NVIDIA_DRIVER = Path.of("/proc/driver/nvidia/version");

    /**
     * Chooses the device for {@code setting} (auto, cpu or gpu), starting DJL's PyTorch engine;
     * {@code settingName} names the setting in errors ({@code pipeline.device}, {@code --device}).
     */
    public static DeviceChoice choose(String setting, String settingName) {
        if (!setting.equals("cpu") && !setting.equals("gpu") && !setting.equals("auto")) {
            throw new InputException(settingName + ": expected one of auto, cpu, gpu, found '" + setting + "'");
        }
        Libtorch libtorch = Libtorch.current();
        int gpus = Engine.getInstance().getGpuCount();
        return decide(setting, settingName, libtorch, gpus, Files.exists(NVIDIA_DRIVER));
    }

    /** The decision itself, given what the machine has (separate so that tests can give any machine). */
    public static DeviceChoice decide(String setting, String settingName, Libtorch libtorch, int gpus,
            boolean nvidiaDriver) {
        String engine = "torch: DJL " + Engine.getDjlVersion() + " PyTorch engine, " + libtorch.describe() + "; device ";
        String seen = gpus + " GPU" + (gpus == 1 ? "" : "s") + " seen by libtorch";
        switch (setting) {
            case "cpu":
                return new DeviceChoice(Device.cpu(), engine + "cpu (" + settingName + " = cpu)");
            case "gpu":
                if (gpus == 0) {
                    throw new InputException(settingName + " = gpu, but " + libtorch.describe() + " sees no GPU; "
                            + noGpuWhy(libtorch, nvidiaDriver) + ", or use device = auto or cpu");
                }
                return new DeviceChoice(Device.gpu(), engine + "gpu(0) (" + settingName + " = gpu; " + seen + ")");
            default:
                if (gpus > 0) {
                    return new DeviceChoice(Device.gpu(), engine + "gpu(0) (auto: " + seen + ")");
                }
                return new DeviceChoice(Device.cpu(), engine + "cpu (auto: " + noGpuWhy(libtorch, nvidiaDriver) + ")");
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
