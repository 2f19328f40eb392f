package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.distribution.it.Distribution.Result;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code anneal kernels} through the assembled {@code bin/anneal} on the CPU: where the fused
 * operators are looked for, what a library's build record says against the plugin's operator
 * sources and the libtorch in use, and what a run would decide here (the reference path: no GPU);
 * {@code --kernels fused} exits 2 where a run with {@code model.kernels = fused} would stop.
 */
class KernelsCommandIT {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();
    @TempDir
    static Path tmp;
    static Distribution dist;

    @BeforeAll
    static void assembled() {
        dist = Distribution.assembled();
    }

    @Test
    void saysWhereTheLibraryIsLookedForAndThatARunHereTakesTheReferencePath() throws Exception {
        Result r = dist.command("kernels").withoutEnv("ANNEAL_KERNELS").run();
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("fused operators: " + dist.resolve("plugins/ssm-hybrid/native/anneal_ops.so")
                + " (beside plugin ssm-hybrid), absent: build them on a GPU machine with tools/gpu/build-kernels.sh"), r.out());
        assertTrue(r.out().contains("\nkernels: reference (the fused operators are CUDA kernels and the model is on the cpu())"),
                r.out());

        Result fused = dist.command("kernels", "--kernels", "fused").withoutEnv("ANNEAL_KERNELS").run();
        assertEquals(2, fused.exit(), fused.out());
        assertTrue(fused.out().contains("--kernels = fused, but the fused operators are CUDA kernels and the model is on the cpu()"),
                fused.out());
    }

    /**
     * A library built elsewhere (here a stand-in file with its record), checked before it is used: the
     * record's operator sources against the plugin's, fingerprinted here from the tree's sources by
     * tools/gpu/build_kernels.py's recipe, and its torch against the libtorch DJL runs.
     */
    @Test
    void readsALibrarysBuildRecordAgainstThePluginAndTheLibtorchInUse() throws Exception {
        String fingerprint = treeSourcesFingerprint();
        Path ours = library("ours", "{\"torch\": \"2.11.0+cu130\", \"cuda\": \"13.0\", \"arch\": \"sm_90\", \"sources\": \""
                + fingerprint + "\", \"build_flags\": \"-DANNEAL_PDL=2\", \"forward_gemms\": \"float8\"}");
        Result r = dist.command("kernels", "--device", "cpu").env("ANNEAL_KERNELS", ours.toString()).run();
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("fused operators: " + ours + " ($ANNEAL_KERNELS), present"), r.out());
        assertTrue(r.out().contains("build record: " + ours.resolveSibling("anneal_ops.json")
                + ": torch 2.11.0+cu130, CUDA 13.0, sm_90, float8 forward GEMMs, built with -DANNEAL_PDL=2"), r.out());
        assertTrue(r.out().contains("operator sources: this plugin's (fingerprint " + fingerprint + ")"), r.out());
        assertTrue(r.out().matches("(?s).*\nlibtorch: DJL runs [0-9.]+, the library was built for torch 2\\.11\\.0\\+cu130: "
                + "a run refuses it\n.*"), r.out());
        assertTrue(r.out().contains("\nkernels: reference (the fused operators are CUDA kernels and the model is on the cpu())"),
                r.out());

        Path other = library("other", "{\"torch\": \"2.11.0+cu130\", \"arch\": \"sm_90\", \"sources\": \"0123abcd\"}");
        Result stale = dist.command("kernels", "--device", "cpu").env("ANNEAL_KERNELS", other.toString()).run();
        assertEquals(0, stale.exit(), stale.out());
        assertTrue(stale.out().contains("operator sources: others (fingerprint 0123abcd) than this plugin's (" + fingerprint
                + "): a run refuses the library; rebuild it with tools/gpu/build-kernels.sh"), stale.out());
    }

    /** A stand-in anneal_ops.so in its own folder, with anneal_ops.json beside it. */
    private static Path library(String folder, String record) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve(folder));
        Files.writeString(dir.resolve("anneal_ops.json"), record);
        return Files.writeString(dir.resolve("anneal_ops.so"), "not a library");
    }

    /** SHA-256 over the tree's operator sources: per file, in this order, its name, a NUL byte, its bytes, a NUL byte. */
    private static String treeSourcesFingerprint() throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        for (String name : List.of("anneal_kernels.cu", "anneal_kernels.h", "anneal_ops.cpp")) {
            sha.update(name.getBytes(StandardCharsets.UTF_8));
            sha.update((byte) 0);
            sha.update(Files.readAllBytes(ROOT.resolve("plugin-ssm-hybrid/src/main/native").resolve(name)));
            sha.update((byte) 0);
        }
        return HexFormat.of().formatHex(sha.digest());
    }
}
