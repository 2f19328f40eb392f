package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tools/gpu/try-variants.sh}, which compares builds of the operators and settings of the step
 * in one GPU call: each plain argument is a build, tested and profiled; each "+ARGS" profiles the
 * build before it again with profile_layers.py's ARGS added, with no build or tests of its own; a
 * failed build skips its "+" profiles, saying so. Run here with a stand-in python3 on the PATH that
 * records each call (the builds, tests and profiles need a GPU) and fails the build whose flags say FAIL.
 */
class TryVariantsIT {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();

    @Test
    void plusArgumentsProfileThePreviousBuildAgainWithTheirOptions(@TempDir Path dir) throws Exception {
        Path calls = dir.resolve("calls.txt");
        Path repo = standIn(dir, calls);
        ProcessBuilder pb = new ProcessBuilder("bash", "tools/gpu/try-variants.sh", "+--early", "",
                "+--branch-stream attention", "+", "-DFAIL", "+--keep-ssd", "@empty", "+")
                .directory(repo.toFile()).redirectErrorStream(true);
        pb.environment().put("OUT", dir.resolve("out").toString());
        pb.environment().put("PATH", dir.resolve("bin") + ":" + System.getenv("PATH"));
        Process p = pb.start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), log);

        assertTrue(log.contains("== variant 1: '+--early' profiles the build before it, and there is none"), log);
        assertTrue(log.contains("== variant 3: variant 2's build, profiled with '--branch-stream attention'"), log);
        assertTrue(log.contains("== variant 5: the build failed"), log);
        assertTrue(log.contains("== variant 6: not profiled, variant 5 failed to build"), log);
        // another commit's sources that are not there: never built, and said so, not called a failed build
        assertTrue(log.contains("== variant 7: empty holds no operator sources"), log);
        assertTrue(log.contains("== variant 8: not profiled, variant 7 has no sources"), log);
        List<String> made = Files.readAllLines(calls);
        assertEquals(2, made.stream().filter(c -> c.contains("build_kernels.py")).count(), String.join("\n", made));
        assertEquals(List.of("|tools/gpu/test_kernels.py plugin-ssm-hybrid/target/native-variant2/anneal_ops.so"),
                made.stream().filter(c -> c.contains("test_kernels.py")).map(c -> c.replaceAll(" --out .*", "")).toList());
        String library = "tools/gpu/profile_layers.py plugin-ssm-hybrid/target/native-variant2/anneal_ops.so --rows 8 --graphed";
        assertEquals(List.of("|" + library, "|" + library + " --branch-stream attention", "|" + library),
                made.stream().filter(c -> c.contains("profile_layers.py")).map(c -> c.replaceAll(" --out .*", "")).toList());
        assertTrue(Files.exists(dir.resolve("out/variants.tgz")), log);
        // the summary: each variant's graphed step beside its label, or why there is none
        String summary = log.substring(log.indexOf("== summary: the graphed step of each variant (LAYER_ROWS=8 rows of 2048)"));
        assertTrue(summary.contains("\n   1 '+--early': no graphed step (see its lines above)\n"), summary);
        assertTrue(summary.contains("\n   2 '': 80.0 ms/step (tools/gpu/profile_layers.py plugin-ssm-hybrid/target/native-variant2/anneal_ops.so --rows 8 --graphed --out "),
                summary);
        assertTrue(summary.contains("\n   3 variant 2's build --branch-stream attention: 80.0 ms/step ("), summary);
        assertTrue(summary.contains("--branch-stream attention --out"), summary);
        assertTrue(summary.contains("\n   4 variant 2's build again: 80.0 ms/step ("), summary);
        assertTrue(summary.contains("--out " + dir.resolve("out/variants/layers-4.json") + "); eager profile: kernels 78.6 ms"
                + " in 1627 launches (the device busy 70.1 ms: 8.5 ms of them overlap)\n"), summary);
        assertTrue(summary.contains("\n   5 '-DFAIL': no graphed step"), summary);
        assertTrue(summary.contains("\n   6 variant 5's build --keep-ssd: no graphed step"), summary);
    }

    /** VARIANT_ONLY: the first build tested runs every case, each later build only the operators named. */
    @Test
    void laterBuildsTestOnlyTheOperatorsNamed(@TempDir Path dir) throws Exception {
        Path calls = dir.resolve("calls.txt");
        Path repo = standIn(dir, calls);
        ProcessBuilder pb = new ProcessBuilder("bash", "tools/gpu/try-variants.sh", "-DFAIL", "", "-DANNEAL_X=1", "+--keep-ssd",
                "-DANNEAL_Y=1").directory(repo.toFile()).redirectErrorStream(true);
        pb.environment().put("OUT", dir.resolve("out").toString());
        pb.environment().put("PATH", dir.resolve("bin") + ":" + System.getenv("PATH"));
        pb.environment().put("VARIANT_ONLY", "linear,silu_mul_linear");
        Process p = pb.start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), log);
        // the first build failed: the second is the first tested, and runs every case
        assertEquals(List.of("|tools/gpu/test_kernels.py plugin-ssm-hybrid/target/native-variant2/anneal_ops.so",
                "|tools/gpu/test_kernels.py plugin-ssm-hybrid/target/native-variant3/anneal_ops.so"
                        + " --only linear,silu_mul_linear --checks-only",
                "|tools/gpu/test_kernels.py plugin-ssm-hybrid/target/native-variant5/anneal_ops.so"
                        + " --only linear,silu_mul_linear --checks-only"),
                Files.readAllLines(calls).stream().filter(c -> c.contains("test_kernels.py"))
                        .map(c -> c.replaceAll(" --out .*", "")).toList());
    }

    /**
     * A repository holding only try-variants.sh, and a stand-in python3 in dir/bin that records each
     * call (ANNEAL_BUILD_FLAGS|arguments) in {@code calls}: a build with FAIL in its flags fails, the
     * others make their library.
     */
    private static Path standIn(Path dir, Path calls) throws Exception {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path python = bin.resolve("python3");
        Files.writeString(python, String.join("\n",
                "#!/bin/bash",
                "echo \"$ANNEAL_BUILD_FLAGS|$*\" >> " + calls,
                "case \"$1\" in",
                "  tools/gpu/build_kernels.py) [[ \"$ANNEAL_BUILD_FLAGS\" == *FAIL* ]] && exit 1; mkdir -p \"$2\"; touch \"$2/anneal_ops.so\";;",
                "  tools/gpu/profile_layers.py) echo \"== fused (SSD chunk 128): 88.0 ms/step, 186,177 tokens/s, kernels 78.6 ms in"
                        + " 1627 launches (the device busy 70.1 ms: 8.5 ms of them overlap), peak allocated 13.2 GiB\";"
                        + " echo \"   graphed (one CUDA graph a step): 80.0 ms/step ($*)\";;",
                "  tools/gpu/test_kernels.py) echo 'all operators agree with their references';;",
                "esac", ""));
        Files.setPosixFilePermissions(python, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path repo = Files.createDirectories(dir.resolve("repo/tools/gpu")).getParent().getParent();
        Files.copy(ROOT.resolve("tools/gpu/try-variants.sh"), repo.resolve("tools/gpu/try-variants.sh"));
        return repo;
    }
}
