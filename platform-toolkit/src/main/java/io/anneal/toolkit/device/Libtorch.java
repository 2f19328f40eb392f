package io.anneal.toolkit.device;

import ai.djl.engine.Engine;
import io.anneal.api.Experimental;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The libtorch that DJL's PyTorch engine runs on: its version and flavour ({@code cpu} or a CUDA
 * build such as {@code cu128}) and its folder. DJL's own {@code PYTORCH_VERSION} names the JNI
 * build, not the library: pointed at a pip torch ({@code PYTORCH_LIBRARY_PATH=.../torch/lib}), the
 * library's version is in that torch's {@code version.py}; DJL's cached download names it in its
 * folder ({@code 2.7.1-20250812-cpu-linux-x86_64}).
 *
 * @param version  e.g. {@code 2.7.1} or {@code 2.11.0+cu130}
 * @param flavour  {@code cpu}, {@code cuXYZ}, or {@code cuda} when only the presence of libtorch_cuda tells
 * @param directory the folder holding libtorch.so (links resolved), or null when DJL does not say
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.torchscript before API 1.2 split it off); reads DJL's PyTorch engine internals (LibUtils) by reflection")
public record Libtorch(String version, String flavour, Path directory) {
    private static final Pattern VERSION_LINE = Pattern.compile("__version__\\s*=\\s*['\"]([^'\"]+)['\"].*");
    private static final Pattern CACHE_FOLDER = Pattern.compile("(\\d+\\.\\d+\\.\\d+)(?:-\\d+)?-(cpu|cu\\d+)-.*");
    private static Libtorch current;

    /** The libtorch of this process, starting DJL's PyTorch engine if it has not started. */
    public static synchronized Libtorch current() {
        if (current == null) {
            Engine engine = Engine.getEngine("PyTorch");
            current = of(engineDirectory(), engine.getVersion());
        }
        return current;
    }

    /**
     * What a libtorch folder says of itself: {@code version.py} beside it (a pip torch), else the
     * DJL cache folder's name, else {@code engineVersion} with the flavour libtorch_cuda's presence tells.
     */
    public static Libtorch of(Path directory, String engineVersion) {
        if (directory == null) {
            return new Libtorch(engineVersion, "unknown", null);
        }
        // a pip torch's version.py beside its lib/ folder: the folder as given, or where its links lead
        Path dir = directory.toAbsolutePath().normalize();
        String pip = pipVersion(dir.resolveSibling("version.py"));
        if (pip == null) {
            dir = realDirectory(directory);
            pip = pipVersion(dir.resolveSibling("version.py"));
        }
        if (pip != null) {
            int plus = pip.indexOf('+');
            return new Libtorch(pip, plus < 0 ? fromLibraries(dir) : pip.substring(plus + 1), dir);
        }
        Matcher m = CACHE_FOLDER.matcher(dir.getFileName() == null ? "" : dir.getFileName().toString());
        if (m.matches()) {
            return new Libtorch(m.group(1), m.group(2), dir);
        }
        return new Libtorch(engineVersion, fromLibraries(dir), dir);
    }

    /** The version without a local part: {@code 2.11.0} of {@code 2.11.0+cu130}. */
    public String baseVersion() {
        int plus = version.indexOf('+');
        return plus < 0 ? version : version.substring(0, plus);
    }

    /** Whether this is a CUDA build. */
    public boolean cuda() {
        return flavour.startsWith("cu");
    }

    /** One phrase for console lines: {@code libtorch 2.7.1 (cpu) from /path}. */
    public String describe() {
        return "libtorch " + baseVersion() + " (" + flavour + ")" + (directory == null ? "" : " from " + directory);
    }

    /** DJL's LibUtils.getLibtorchPath(), read by reflection: the API depends on DJL's api only. */
    private static Path engineDirectory() {
        try {
            Object path = Class.forName("ai.djl.pytorch.jni.LibUtils").getMethod("getLibtorchPath").invoke(null);
            return path == null ? null : Path.of(path.toString());
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            return null;
        }
    }

    /** A folder of links (as the GPU machine's kit makes) stands for the folder libtorch.so really is in. */
    private static Path realDirectory(Path directory) {
        try {
            return directory.resolve("libtorch.so").toRealPath().getParent();
        } catch (IOException | RuntimeException e) {
            return directory.toAbsolutePath().normalize();
        }
    }

    private static String pipVersion(Path versionFile) {
        try {
            for (String line : Files.readAllLines(versionFile)) {
                Matcher m = VERSION_LINE.matcher(line);
                if (m.matches()) {
                    return m.group(1);
                }
            }
        } catch (IOException | RuntimeException e) {
            // not a pip torch
        }
        return null;
    }

    private static String fromLibraries(Path dir) {
        return Files.exists(dir.resolve("libtorch_cuda.so")) ? "cuda" : "cpu";
    }
}
