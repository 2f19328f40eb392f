package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tools/gpu/compile-check.sh}: the fused operators' sources compile on a machine without a GPU
 * (nvcc for the kernels, g++ against torch's headers for the operators), so that a change to them is
 * known to build before a GPU call is spent on it. Runs where nvcc is (this project's machines have
 * CUDA 13's); elsewhere the script exits 3 and the tests are skipped, saying why.
 */
class NativeSourcesCompileIT {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();
    private static final Path NATIVE = ROOT.resolve("plugin-ssm-hybrid/src/main/native");

    @Test
    void theTreesOperatorSourcesCompile() throws Exception {
        Run run = check(NATIVE);
        assertEquals(0, run.exit, run.output);
        assertTrue(run.output.contains("compile-check: default compiles"), run.output);
        assertTrue(run.output.matches("(?s).*compile-check: the operators' schemas parse \\(\\d+ schemas, libtorch's parser from .*"),
                run.output);
        // without a GPU every launch fails, and launch() says so (on a GPU machine the probe is not run)
        assertTrue(run.output.contains("compile-check: default, a kernel launch that fails: anneal: launching a kernel (grid 1 x 1 x 1, 256 threads")
                || run.output.contains("not run: this machine has a GPU"), run.output);
        assertOnlyKnownKernelsSpill(run.output, "default");
    }

    /**
     * The kernels whose values ptxas may keep in local memory, each for a reason anneal_kernels.cu gives: the
     * conv backward's 8-step window (kernel widths 5 to 8) under its 64-register bound, the unstaged conv backward
     * (its window's document ids: a few bytes of stack), and the SSD diagonal backward held to 128 registers for 4
     * blocks an SM (8 bytes of spill, faster than unbounded). Any other kernel with a stack frame or spills is a
     * regression a change made without a word from the compiler (a parameter struct indexed at run time was one).
     */
    private static final List<Pattern> KNOWN_TO_SPILL = List.of(
            Pattern.compile("anneal::conv_backward_kernel<[^,]+, 8, \\d, (true|false)>"),
            Pattern.compile("anneal::conv_backward_kernel<[^,]+, \\d, \\d, false>"),
            Pattern.compile("anneal::ssd_diagonal_backward_kernel<[^,]+, 4>"));

    private static void assertOnlyKnownKernelsSpill(String output, String label) {
        String prefix = "compile-check: " + label + ", kernels with a stack frame or spills (ptxas): ";
        String line = output.lines().filter(l -> l.startsWith(prefix)).findFirst()
                .orElseThrow(() -> new AssertionError("no ptxas report for " + label + ":\n" + output));
        String report = line.substring(prefix.length());
        if (report.equals("none")) {
            return;
        }
        for (String kernel : report.split("; ")) {
            String name = kernel.substring(0, kernel.lastIndexOf(" ("));
            Assumptions.assumeFalse(name.startsWith("_Z"), "no c++filt here to demangle ptxas's kernel names: " + name);
            assertTrue(KNOWN_TO_SPILL.stream().anyMatch(p -> p.matcher(name).matches()),
                    "a kernel that ptxas now gives a stack frame or spills (" + label + "): " + kernel);
        }
    }

    /** The probe can fail: kernels whose launch() drops CUDA's error are refused, naming what went unsaid. */
    @Test
    void aKernelLaunchThatFailsUnreportedIsRefused(@TempDir Path dir) throws Exception {
        for (String name : List.of("anneal_ops.cpp", "anneal_kernels.cu", "anneal_kernels.h")) {
            Files.copy(NATIVE.resolve(name), dir.resolve(name));
        }
        Path kernels = dir.resolve("anneal_kernels.cu");
        String source = Files.readString(kernels);
        String check = "  if (status != cudaSuccess) {";
        assertTrue(source.contains(check), "launch() checks the status: " + check);
        Files.writeString(kernels, source.replace(check, "  if (false && status != cudaSuccess) {"));
        Run run = check(dir);
        Assumptions.assumeFalse(run.output.contains("not run: this machine has a GPU"), "the probe runs only without a GPU");
        assertEquals(2, run.exit, run.output);
        assertTrue(run.output.contains("compile-check: a failed kernel launch is not reported (default): "
                + "a kernel launch failed and nothing said so"), run.output);
    }

    @Test
    void aSourceThatDoesNotCompileIsNamedWithItsLine(@TempDir Path dir) throws Exception {
        for (String name : List.of("anneal_ops.cpp", "anneal_kernels.cu", "anneal_kernels.h")) {
            Files.copy(NATIVE.resolve(name), dir.resolve(name));
        }
        int opsLine = appendLine(dir.resolve("anneal_ops.cpp"), "static int broken_operator() { return no_such_operator_value; }");
        // plain nvcc takes an implicit bfloat16 conversion; torch's extension builder, whose flags the check
        // adds, does not: the GPU machine's build would fail on this line
        int kernelLine = appendLine(dir.resolve("anneal_kernels.cu"), "__device__ float implicit_widening(__nv_bfloat16 x) { return x; }");
        Run run = check(dir);
        assertEquals(2, run.exit, run.output);
        assertTrue(run.output.contains("anneal_ops.cpp does not compile (default)"), run.output);
        assertTrue(run.output.contains("anneal_ops.cpp:" + opsLine + ":") && run.output.contains("no_such_operator_value"), run.output);
        assertTrue(run.output.contains("anneal_kernels.cu does not compile (default)"), run.output);
        assertTrue(run.output.contains("anneal_kernels.cu(" + kernelLine + ")")
                && run.output.contains("no suitable conversion function from \"__nv_bfloat16\" to \"float\""), run.output);
        assertTrue(!run.output.contains("default compiles"), run.output);
    }

    /**
     * A schema libtorch's parser refuses is named with its line. This one (a list of tensors with a list default)
     * compiled with g++ and type-checked in FusedLayerSourceTest's TorchScript, then aborted the operators' load
     * in every build of a GPU call.
     */
    @Test
    void aSchemaTheParserRefusesIsNamedWithItsLine(@TempDir Path dir) throws Exception {
        for (String name : List.of("anneal_ops.cpp", "anneal_kernels.cu", "anneal_kernels.h")) {
            Files.copy(NATIVE.resolve(name), dir.resolve(name));
        }
        String source = Files.readString(dir.resolve("anneal_ops.cpp"));
        String given = "Tensor[]? x8=None) -> Tensor[]";
        assertTrue(source.contains(given), "linear_pair's schema no longer ends with " + given);
        int line = (int) source.substring(0, source.indexOf("m.def(\"linear_pair(")).chars().filter(c -> c == '\n').count() + 1;
        Files.writeString(dir.resolve("anneal_ops.cpp"), source.replace(given, "Tensor[] x8=[]) -> Tensor[]"));
        Run run = check(dir);
        assertEquals(2, run.exit, run.output);
        assertTrue(run.output.contains("anneal_ops.cpp:" + line + ": libtorch's parser refuses the schema"), run.output);
        assertTrue(run.output.contains("lists are only supported for float, int and complex types"), run.output);
    }

    /** The ptxas report names a kernel that keeps values on a stack (an array indexed at run time), and the check refuses it. */
    @Test
    void aKernelThatSpillsIsNamed(@TempDir Path dir) throws Exception {
        for (String name : List.of("anneal_ops.cpp", "anneal_kernels.cu", "anneal_kernels.h")) {
            Files.copy(NATIVE.resolve(name), dir.resolve(name));
        }
        // written and read at indices known only at run time: the array cannot live in registers
        appendLine(dir.resolve("anneal_kernels.cu"), "__global__ void planted_stack_kernel(int i, float* out) { float a[64];"
                + " for (int k = 0; k < 64; k++) a[k] = out[k]; a[i & 63] += out[64]; out[0] = a[(i >> 6) & 63]; }");
        Run run = check(dir);
        assertEquals(0, run.exit, run.output);
        assertTrue(run.output.matches("(?s).*kernels with a stack frame or spills \\(ptxas\\): .*planted_stack_kernel \\(\\d+ bytes stack.*"),
                run.output);
        AssertionError refused = org.junit.jupiter.api.Assertions.assertThrows(AssertionError.class,
                () -> assertOnlyKnownKernelsSpill(run.output, "default"));
        assertTrue(refused.getMessage().contains("planted_stack_kernel"), refused.getMessage());
    }

    /** A variant's flags reach both compiles, after build_kernels.py's own (which it prints with --flags). */
    @Test
    void aVariantsFlagsReachBothCompiles(@TempDir Path dir) throws Exception {
        for (String name : List.of("anneal_ops.cpp", "anneal_kernels.cu", "anneal_kernels.h")) {
            Files.copy(NATIVE.resolve(name), dir.resolve(name));
        }
        String probe = "#ifdef ANNEAL_COMPILE_CHECK_PROBE\n#error the variant's flag is here\n#endif";
        int opsLine = appendLine(dir.resolve("anneal_ops.cpp"), probe) + 1;
        int kernelLine = appendLine(dir.resolve("anneal_kernels.cu"), probe) + 1;
        Run run = check(dir, "-DANNEAL_COMPILE_CHECK_PROBE=1");
        assertEquals(2, run.exit, run.output);
        assertTrue(run.output.contains("anneal_ops.cpp:" + opsLine + ":"), run.output);
        // the #error is nvcc's host preprocessor's, which writes g++'s file:line form
        assertTrue(run.output.contains("anneal_kernels.cu:" + kernelLine + ":"), run.output);
        assertTrue(run.output.contains("does not compile (-DANNEAL_COMPILE_CHECK_PROBE=1)"), run.output);
    }

    /**
     * Every build switch of the sources ({@code #ifndef ANNEAL_X} then {@code #define ANNEAL_X 0} or {@code 1}: the
     * experiments tools/gpu/try-variants.sh builds, and the defaults' way back) compiles flipped: the ones off by
     * default all on in one build, the ones on all off in another. An experiment's code that stopped compiling
     * would otherwise first show in a GPU call's build.
     */
    @Test
    void everyBuildSwitchCompilesFlipped() throws Exception {
        Pattern switchDefault = Pattern.compile("#ifndef (ANNEAL_\\w+)\\s*\\n#define \\1 ([01])\\s*\\n");
        List<String> on = new ArrayList<>();
        List<String> off = new ArrayList<>();
        for (String name : List.of("anneal_ops.cpp", "anneal_kernels.cu", "anneal_kernels.h")) {
            Matcher m = switchDefault.matcher(Files.readString(NATIVE.resolve(name)));
            while (m.find()) {
                (m.group(2).equals("0") ? on : off).add("-D" + m.group(1) + "=" + (m.group(2).equals("0") ? "1" : "0"));
            }
        }
        assertTrue(on.contains("-DANNEAL_FP8_BACKWARD=1") && off.contains("-DANNEAL_FP8_FORWARD=0"),
                "the switches found: " + on + " " + off);
        String allOn = String.join(" ", on), allOff = String.join(" ", off);
        Run run = check(NATIVE, allOn, allOff);
        assertEquals(0, run.exit, run.output);
        assertTrue(run.output.contains("compile-check: " + allOn + " compiles"), run.output);
        assertTrue(run.output.contains("compile-check: " + allOff + " compiles"), run.output);
        assertOnlyKnownKernelsSpill(run.output, allOn);
        assertOnlyKnownKernelsSpill(run.output, allOff);
    }

    private record Run(int exit, String output) {}

    private static Run check(Path sources, String... variants) throws Exception {
        List<String> command = new ArrayList<>(List.of("bash", ROOT.resolve("tools/gpu/compile-check.sh").toString()));
        command.addAll(List.of(variants));
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().put("ANNEAL_SOURCE_DIR", sources.toString());
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        int exit = p.waitFor();
        Assumptions.assumeTrue(exit != 3, () -> "tools/gpu/compile-check.sh cannot check on this machine: " + out);
        return new Run(exit, out);
    }

    /** Appends {@code line} to {@code file} and returns its 1-based line number. */
    private static int appendLine(Path file, String line) throws Exception {
        String text = Files.readString(file);
        if (!text.endsWith("\n")) {
            text += "\n";
        }
        int number = (int) text.chars().filter(c -> c == '\n').count() + 1;
        Files.writeString(file, text + line + "\n", StandardOpenOption.TRUNCATE_EXISTING);
        return number;
    }
}
