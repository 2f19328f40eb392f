package io.anneal.hybrid.model;

import ai.djl.Device;
import ai.djl.util.cuda.CudaUtils;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.InputException;
import io.anneal.api.config.ConfigView;
import io.anneal.toolkit.device.Libtorch;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * Anneal's fused GPU operators ({@code src/main/native}: the SSD scan, the causal conv1d, the gated
 * RMSNorm, the chunked LM head + cross-entropy, the residual norms, SwiGLU, RoPE and the linear layer
 * that sums weight gradients into the float32 masters, registered in libtorch as {@code torch.ops.anneal.*}),
 * loaded into the process with {@link System#load} once DJL's engine has started, so that the fused
 * TorchScript layer ({@code FalconH1FusedLayer.torchscript}) can call them.
 *
 * <p>Where the library is: {@code $ANNEAL_KERNELS} (a file), else {@code native/anneal_ops.so}
 * beside this plugin's jar ({@code plugins/ssm-hybrid/native/} in a distribution;
 * {@code plugin-ssm-hybrid/target/native/} in a build tree). {@code tools/gpu/build-kernels.sh}
 * builds it, with {@code anneal_ops.json} naming the sources, torch and GPU architecture it was built
 * for; a library built from other sources or for another libtorch or GPU is refused with both named,
 * before it is loaded.
 */
public final class FusedKernels {
    /** The {@code kernels} setting of the model block. */
    public enum Mode {
        /** Fused operators on a GPU when a matching library is present; otherwise the reference path, said in one line. */
        AUTO,
        /** Fused operators or nothing: a missing or mismatched library stops the run (exit 2). */
        FUSED,
        /** The TorchScript reference layers, whatever is present. */
        REFERENCE;

        public String configName() {
            return ConfigView.configName(this);
        }
    }

    /** What was decided: whether the fused path is on, and the one line that says so and why. */
    public record Status(boolean fused, String line) {
    }

    static final String LIBRARY = "anneal_ops.so";
    private static final String ENVIRONMENT = "ANNEAL_KERNELS";
    /** The status line of the library loaded in this process (it loads once), or null. */
    private static String loaded;

    private FusedKernels() {
    }

    /**
     * Decides the path for a model on {@code device}, loading the library the first time it is
     * needed. {@code setting} names the config path in errors (e.g. {@code model.kernels}).
     */
    public static synchronized Status select(Mode mode, Device device, String setting) {
        if (mode == Mode.REFERENCE) {
            return new Status(false, "kernels: reference (" + setting + " = reference)");
        }
        if (!device.isGpu()) {
            return refuseOr(mode, setting, "the fused operators are CUDA kernels and the model is on the " + device);
        }
        Path library = locate();
        if (loaded != null) {
            return new Status(true, loaded);
        }
        if (library == null || !Files.isRegularFile(library)) {
            return refuseOr(mode, setting, "no fused operators at " + (library == null ? "$" + ENVIRONMENT : library)
                    + "; build them on this GPU machine with tools/gpu/build-kernels.sh");
        }
        Checked checked = check(library, device);
        if (checked.mismatch() != null) {
            return refuseOr(mode, setting, checked.mismatch());
        }
        try {
            System.load(library.toAbsolutePath().toString());
        } catch (UnsatisfiedLinkError e) {
            return refuseOr(mode, setting, "libtorch refused " + library + " (" + e.getMessage()
                    + "); rebuild it with tools/gpu/build-kernels.sh against the libtorch in use, "
                    + engineVersion());
        }
        loaded = "kernels: fused (" + library + builtWith(checked.built()) + ")";
        return new Status(true, loaded);
    }

    /**
     * "; float8 forward GEMMs" where the library runs its linear layers' forward GEMMs in float8 (the
     * default build on a GPU that has them), then "; built with FLAGS" for a library built with flags
     * of its own (anneal_ops.json's build_flags: an experiment's build, tools/gpu/try-variants.sh or
     * ANNEAL_BUILD_FLAGS), so that a run's log says which arithmetic and which operators it ran.
     */
    static String builtWith(BuildRecord built) {
        return (built.forwardGemms().equals("float8") ? "; float8 forward GEMMs" : "")
                + (built.flags().isEmpty() ? "" : "; built with " + built.flags());
    }

    /**
     * A library's {@code anneal_ops.json} beside it (tools/gpu/build_kernels.py): the torch, CUDA and
     * GPU architecture it was built for, its build flags ("" for the default build), the
     * fingerprint of the operator sources it was built from and what its linear layers' forward
     * GEMMs run in ("float8" or "bfloat16"; each "" where missing: a record from an older build).
     */
    record BuildRecord(String torch, String cuda, String arch, String flags, String sources, String forwardGemms) {
        static Path of(Path library) {
            return library.resolveSibling("anneal_ops.json");
        }

        static BuildRecord read(Path library) throws IOException {
            JsonNode built = new ObjectMapper().readTree(of(library).toFile());
            return new BuildRecord(built.path("torch").asText(""), built.path("cuda").asText(""),
                    built.path("arch").asText(""), built.path("build_flags").asText("").trim(),
                    built.path("sources").asText(""), built.path("forward_gemms").asText(""));
        }
    }

    private static Status refuseOr(Mode mode, String setting, String why) {
        if (mode == Mode.FUSED) {
            throw new InputException(setting + " = fused, but " + why);
        }
        return new Status(false, "kernels: reference (" + why + ")");
    }

    /** The library's build record against the running libtorch and GPU; null when they match. */
    static String mismatch(Path library, Device device) {
        return check(library, device).mismatch();
    }

    /** A library's build record, read once (null where it could not be), and why the library does not fit (null: it does). */
    private record Checked(BuildRecord built, String mismatch) {
        static Checked refused(String why) {
            return new Checked(null, why);
        }
    }

    private static Checked check(Path library, Device device) {
        Path record = BuildRecord.of(library);
        if (!Files.isRegularFile(record)) {
            return Checked.refused(record + " is missing: it names the libtorch and GPU the library was built for; "
                    + "rebuild with tools/gpu/build-kernels.sh");
        }
        BuildRecord built;
        try {
            built = BuildRecord.read(library);
        } catch (IOException e) {
            return Checked.refused(record + " is not readable JSON (" + e.getMessage() + ")");
        }
        return new Checked(built, mismatch(library, built, device));
    }

    private static String mismatch(Path library, BuildRecord built, Device device) {
        String expected = sourcesFingerprint();
        if (!built.sources().equals(expected)) {
            return library + " was built from other operator sources (fingerprint "
                    + (built.sources().isEmpty() ? "none" : built.sources()) + ") than this plugin's (" + expected
                    + "); rebuild it with tools/gpu/build-kernels.sh";
        }
        String engine = engineVersion();
        if (!sameTorch(built.torch(), engine)) {
            return library + " was built for torch " + built.torch() + " but DJL runs libtorch " + engine;
        }
        String capability = CudaUtils.getComputeCapability(device.getDeviceId());
        if (!built.arch().equals("sm_" + capability)) {
            return library + " was built for " + built.arch() + " but GPU " + device.getDeviceId() + " is sm_" + capability;
        }
        return null;
    }

    /** Whether a library built for torch {@code recorded} (2.11.0+cu130) fits the libtorch {@code engine} (2.11.0). */
    private static boolean sameTorch(String recorded, String engine) {
        return recorded.equals(engine) || recorded.startsWith(engine + "+");
    }

    /**
     * What {@code anneal kernels} prints before its decision: where the library is looked for and
     * whether it is there, and what its build record says against this plugin's operator sources and
     * the libtorch DJL runs, each on a line; on any machine, without loading the library (a GPU's
     * architecture is compared by {@link #select}, which needs the GPU).
     */
    public static List<String> report() {
        List<String> lines = new java.util.ArrayList<>();
        Path library = locate();
        String where = configured() != null ? "$" + ENVIRONMENT : "beside plugin ssm-hybrid";
        if (library == null) {
            lines.add("fused operators: no place to look for them (the plugin's folder is unknown; set $" + ENVIRONMENT + ")");
            return lines;
        }
        boolean present = Files.isRegularFile(library);
        lines.add("fused operators: " + library + " (" + where + "), " + (present ? "present" : "absent: build them on a GPU"
                + " machine with tools/gpu/build-kernels.sh"));
        Path record = BuildRecord.of(library);
        if (!present && !Files.isRegularFile(record)) {
            return lines;
        }
        BuildRecord built;
        try {
            built = BuildRecord.read(library);
        } catch (IOException e) {
            lines.add("build record: " + record + " is missing or not readable JSON (" + e.getMessage() + ")");
            return lines;
        }
        lines.add("build record: " + record + ": torch " + orUnknown(built.torch()) + ", CUDA " + orUnknown(built.cuda())
                + ", " + orUnknown(built.arch())
                + (built.forwardGemms().isEmpty() ? "" : ", " + built.forwardGemms() + " forward GEMMs")
                + (built.flags().isEmpty() ? "" : ", built with " + built.flags()));
        String expected = sourcesFingerprint();
        lines.add(built.sources().equals(expected)
                ? "operator sources: this plugin's (fingerprint " + expected + ")"
                : "operator sources: others (fingerprint " + (built.sources().isEmpty() ? "none" : built.sources())
                        + ") than this plugin's (" + expected + "): a run refuses the library; rebuild it with"
                        + " tools/gpu/build-kernels.sh");
        String engine = engineVersion();
        lines.add(sameTorch(built.torch(), engine) ? "libtorch: DJL runs " + engine + ", as the library was built for"
                : "libtorch: DJL runs " + engine + ", the library was built for torch " + built.torch() + ": a run refuses it");
        return lines;
    }

    private static String orUnknown(String value) {
        return value.isEmpty() ? "?" : value;
    }

    /** The operators' source files, as the jar carries them (io/anneal/hybrid/kernels/) and build_kernels.py reads them. */
    static final List<String> SOURCES = List.of("anneal_kernels.cu", "anneal_kernels.h", "anneal_ops.cpp");

    /**
     * The SHA-256, in hex, over the operators' sources in {@link #SOURCES} order, each as its name in
     * UTF-8, a NUL byte, its bytes and a NUL byte: what {@code tools/gpu/build_kernels.py} records in
     * {@code anneal_ops.json} as {@code sources}. A library built from other sources (an older
     * checkout, an edit not rebuilt) may lack an operator the TorchScript layer calls, or compute
     * differently: it is refused before it is loaded.
     */
    static String sourcesFingerprint() {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            for (String name : SOURCES) {
                try (InputStream in = FusedKernels.class.getResourceAsStream("/io/anneal/hybrid/kernels/" + name)) {
                    if (in == null) {
                        throw new IllegalStateException("the plugin jar lacks io/anneal/hybrid/kernels/" + name);
                    }
                    sha.update(name.getBytes(StandardCharsets.UTF_8));
                    sha.update((byte) 0);
                    sha.update(in.readAllBytes());
                    sha.update((byte) 0);
                }
            }
            return HexFormat.of().formatHex(sha.digest());
        } catch (IOException | NoSuchAlgorithmException e) {
            throw new IllegalStateException("cannot read the operators' sources in the plugin jar: " + e.getMessage(), e);
        }
    }

    /** The version of the libtorch DJL runs (not DJL's JNI version: see {@link Libtorch}). */
    static String engineVersion() {
        return Libtorch.current().version();
    }

    /** $ANNEAL_KERNELS when it is set and not blank, else null. */
    private static String configured() {
        String value = System.getenv(ENVIRONMENT);
        return value == null || value.isBlank() ? null : value;
    }

    /** $ANNEAL_KERNELS, else native/anneal_ops.so beside this plugin's jar (or classes folder). */
    static Path locate() {
        String configured = configured();
        if (configured != null) {
            return Path.of(configured);
        }
        try {
            Path code = Path.of(FusedKernels.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            return code.getParent().resolve("native").resolve(LIBRARY);
        } catch (URISyntaxException | RuntimeException e) {
            return null;
        }
    }
}
