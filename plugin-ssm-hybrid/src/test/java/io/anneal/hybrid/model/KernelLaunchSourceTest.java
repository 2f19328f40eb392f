package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Two rules of {@code anneal_kernels.cu} that only a GPU would otherwise check, and only by luck:
 * <ul>
 *   <li>every kernel is launched through {@code launch()}, which reports a launch that failed (a
 *       {@code <<<...>>>} of its own would fail in silence, its output unwritten);</li>
 *   <li>every kernel's first statement is {@code wait_for_predecessors()}: a build with
 *       {@code -DANNEAL_PDL} launches each kernel before the one ahead of it has finished, and a kernel
 *       that touched memory before that wait would race with it.</li>
 * </ul>
 */
class KernelLaunchSourceTest {
    private static final Pattern KERNEL =
            Pattern.compile("__global__\\s+void\\s+(?:__launch_bounds__\\([^)]*\\)\\s*)?(\\w+)\\s*\\(");

    private static String kernels() throws Exception {
        try (InputStream in = FusedKernels.class.getResourceAsStream("/io/anneal/hybrid/kernels/anneal_kernels.cu")) {
            assertTrue(in != null, "the plugin carries anneal_kernels.cu");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    /** The kernels (by name) whose body does not begin with the wait. */
    static List<String> withoutTheWaitFirst(String source) {
        List<String> missing = new ArrayList<>();
        Matcher m = KERNEL.matcher(source);
        while (m.find()) {
            int body = source.indexOf('{', m.end());
            String first = source.substring(body + 1).strip();
            if (!first.startsWith("wait_for_predecessors();")) {
                missing.add(m.group(1));
            }
        }
        return missing;
    }

    /** The triple-chevron launches in the source's code (the one inside launch() included; comments aside). */
    static int chevronLaunches(String source) {
        String code = source.replaceAll("//[^\\n]*", "");
        return code.split("<<<", -1).length - 1;
    }

    @Test
    void everyKernelWaitsForTheOneBeforeItFirst() throws Exception {
        String source = kernels();
        Matcher m = KERNEL.matcher(source);
        int kernels = 0;
        while (m.find()) {
            kernels++;
        }
        assertTrue(kernels >= 30, "found " + kernels + " kernels");
        assertEquals(List.of(), withoutTheWaitFirst(source));
    }

    @Test
    void onlyLaunchLaunchesKernels() throws Exception {
        String source = kernels();
        assertEquals(1, chevronLaunches(source), "a <<<...>>> outside launch(): launch it with launch() instead");
        String helper = source.substring(source.indexOf("void launch(void (*kernel)")).replaceAll("//[^\\n]*", "");
        assertTrue(helper.indexOf("<<<") < helper.indexOf("\n}\n"), "the one <<<...>>> is launch()'s own");
    }

    /** The checks can fail: a kernel written without the wait, and a launch of its own, are both seen. */
    @Test
    void aKernelWithoutTheWaitAndAChevronLaunchAreCaught() throws Exception {
        String source = kernels() + "\ntemplate <typename T>\n__global__ void __launch_bounds__(128) late_kernel(T* out) {\n"
                + "  out[threadIdx.x] = 0;\n  wait_for_predecessors();\n}\n"
                + "void run_late(float* out, cudaStream_t s) { late_kernel<float><<<1, 128, 0, s>>>(out); }\n";
        assertEquals(List.of("late_kernel"), withoutTheWaitFirst(source));
        assertEquals(2, chevronLaunches(source));
    }
}
