package io.anneal.runtime.cli;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.util.cuda.CudaUtils;
import io.anneal.api.plugin.ApiVersion;
import io.anneal.toolkit.device.DeviceChoice;
import io.anneal.toolkit.device.Libtorch;
import io.anneal.runtime.plugins.LoadedPlugin;
import io.anneal.runtime.plugins.PluginRegistry;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;

/**
 * {@code anneal env}: what a bug report needs, as {@code trl env} prints it: versions, where
 * libtorch comes from and what it is, the GPUs, the environment variables that steer DJL, libtorch
 * and Anneal (bin/anneal sets OMP_WAIT_POLICY, CUBLAS_WORKSPACE_CONFIG and PYTORCH_CUDA_ALLOC_CONF unless
 * they are set), and
 * the plugins loaded.
 */
final class EnvironmentReport {
    private static final List<String> VARIABLES = List.of("PYTORCH_LIBRARY_PATH", "PYTORCH_VERSION", "PYTORCH_FLAVOR",
            "DJL_CACHE_DIR", "ENGINE_CACHE_DIR", "ANNEAL_KERNELS", "ANNEAL_TORCH", "CUDA_VISIBLE_DEVICES",
            "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "CUBLAS_WORKSPACE_CONFIG", "PYTORCH_CUDA_ALLOC_CONF");

    private final Map<String, String> env;
    private final String annealHome;

    EnvironmentReport(Map<String, String> env, String annealHome) {
        this.env = env;
        this.annealHome = annealHome;
    }

    void print(PrintStream out, PluginRegistry registry) {
        out.println("anneal " + ApiVersion.release() + " (API " + ApiVersion.current() + ")"
                + (annealHome == null ? "" : " at " + annealHome));
        out.println("java " + System.getProperty("java.version") + " (" + System.getProperty("java.vendor") + ") at "
                + System.getProperty("java.home"));
        out.println("os " + System.getProperty("os.name") + " " + System.getProperty("os.version") + " "
                + System.getProperty("os.arch") + ", " + Runtime.getRuntime().availableProcessors() + " CPUs available");
        Libtorch libtorch = Libtorch.current();
        out.println("djl " + Engine.getDjlVersion() + ", PyTorch engine built for libtorch "
                + Engine.getEngine("PyTorch").getVersion());
        out.println(libtorch.describe());
        out.println("nvidia driver: " + driver());
        int gpus = Engine.getInstance().getGpuCount();
        out.println("gpus seen by libtorch: " + gpus);
        for (int i = 0; i < gpus; i++) {
            out.println("  " + gpu(i));
        }
        out.println(DeviceChoice.choose("auto", "pipeline.device").line());
        for (String name : VARIABLES) {
            out.println(name + "=" + env.getOrDefault(name, ""));
        }
        out.println("plugins:");
        for (LoadedPlugin p : registry.plugins()) {
            out.println("  " + p.id() + " " + p.version() + " " + p.location());
        }
        if (!registry.refusals().isEmpty()) {
            out.println("refused plugins: " + registry.refusals().size() + " (anneal plugins lists them)");
        }
    }

    private static String driver() {
        try {
            return Files.exists(DeviceChoice.NVIDIA_DRIVER) ? Files.readAllLines(DeviceChoice.NVIDIA_DRIVER).get(0).trim() : "none";
        } catch (IOException | RuntimeException e) {
            return "present, unreadable (" + e.getMessage() + ")";
        }
    }

    private static String gpu(int index) {
        try {
            return "gpu(" + index + "): compute capability " + CudaUtils.getComputeCapability(index) + ", "
                    + CudaUtils.getGpuMemory(Device.gpu(index)).getMax() / (1024 * 1024) + " MiB";
        } catch (RuntimeException | LinkageError e) {
            return "gpu(" + index + "): details unavailable (" + e.getMessage() + ")";
        }
    }
}
