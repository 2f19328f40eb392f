package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import io.anneal.api.InputException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The fused path's decisions on a machine without a GPU (CI's): what each kernels setting does, and the load-time checks. */
class FusedKernelsTest {
    @Test
    void autoOnTheCpuIsTheReferencePathSaidInOneLine() {
        FusedKernels.Status status = FusedKernels.select(FusedKernels.Mode.AUTO, Device.cpu(), "model.kernels");
        assertFalse(status.fused());
        assertTrue(status.line().startsWith("kernels: reference ("), status.line());
        assertTrue(status.line().contains("cpu"), status.line());
        assertFalse(status.line().contains("\n"));
    }

    @Test
    void fusedOnTheCpuIsRefusedNamingTheSetting() {
        InputException e = assertThrows(InputException.class,
                () -> FusedKernels.select(FusedKernels.Mode.FUSED, Device.cpu(), "model.kernels"));
        assertTrue(e.getMessage().startsWith("model.kernels = fused, but "), e.getMessage());
    }

    @Test
    void referenceNeverLoadsAnything() {
        FusedKernels.Status status = FusedKernels.select(FusedKernels.Mode.REFERENCE, Device.gpu(), "model.kernels");
        assertEquals("kernels: reference (model.kernels = reference)", status.line());
    }

    @Test
    void aLibraryBuiltForAnotherLibtorchIsRefusedNamingBoth(@TempDir Path dir) throws Exception {
        Path library = dir.resolve(FusedKernels.LIBRARY);
        Files.writeString(library, "not loaded");
        Files.writeString(dir.resolve("anneal_ops.json"), "{\"torch\": \"1.13.0+cu117\", \"cuda\": \"11.7\", \"arch\": \"sm_80\", "
                + "\"sources\": \"" + FusedKernels.sourcesFingerprint() + "\"}");
        String why = FusedKernels.mismatch(library, Device.gpu());
        assertNotNull(why);
        assertTrue(why.contains("built for torch 1.13.0+cu117"), why);
        assertTrue(why.contains("DJL runs libtorch " + FusedKernels.engineVersion()), why);
    }

    @Test
    void aLibraryBuiltFromOtherSourcesIsRefusedNamingBothFingerprints(@TempDir Path dir) throws Exception {
        Path library = dir.resolve(FusedKernels.LIBRARY);
        Files.writeString(library, "not loaded");
        String stale = "0".repeat(64);
        Files.writeString(dir.resolve("anneal_ops.json"), "{\"torch\": \"" + FusedKernels.engineVersion()
                + "\", \"arch\": \"sm_90\", \"sources\": \"" + stale + "\"}");
        String why = FusedKernels.mismatch(library, Device.gpu());
        assertTrue(why.contains("built from other operator sources (fingerprint " + stale + ")"), why);
        assertTrue(why.contains("than this plugin's (" + FusedKernels.sourcesFingerprint() + ")"), why);
        assertTrue(why.endsWith("rebuild it with tools/gpu/build-kernels.sh"), why);
        // a record from before fingerprints (no "sources") is stale too
        Files.writeString(dir.resolve("anneal_ops.json"), "{\"torch\": \"" + FusedKernels.engineVersion() + "\", \"arch\": \"sm_90\"}");
        assertTrue(FusedKernels.mismatch(library, Device.gpu()).contains("(fingerprint none)"));
    }

    /** An experiment's library (built with flags of its own) says so in the status line; the default build adds nothing. */
    @Test
    void aLibraryBuiltWithFlagsNamesThem(@TempDir Path dir) throws Exception {
        assertEquals("; built with -DANNEAL_PDL=2", statusOf(dir, "\"build_flags\": \"-DANNEAL_PDL=2\""));
        assertEquals("", statusOf(dir, null));
    }

    /**
     * The default build records its forward GEMMs as float8 (build_kernels.py asks the library), and
     * the status line says so; a bfloat16 build (-DANNEAL_FP8_FORWARD=0, or a GPU without float8)
     * says nothing of them beyond its flags.
     */
    @Test
    void theStatusLineSaysWhenTheForwardGemmsAreFloat8(@TempDir Path dir) throws Exception {
        assertEquals("; float8 forward GEMMs", statusOf(dir, "\"forward_gemms\": \"float8\""));
        assertEquals("; float8 forward GEMMs; built with -DANNEAL_PDL=2",
                statusOf(dir, "\"forward_gemms\": \"float8\", \"build_flags\": \"-DANNEAL_PDL=2\""));
        assertEquals("; built with -DANNEAL_FP8_FORWARD=0",
                statusOf(dir, "\"forward_gemms\": \"bfloat16\", \"build_flags\": \"-DANNEAL_FP8_FORWARD=0\""));
    }

    /** What the status line adds for a library whose anneal_ops.json holds these fields (null: none) beside torch and arch. */
    private static String statusOf(Path dir, String fields) throws Exception {
        Files.writeString(dir.resolve("anneal_ops.json"), "{\"torch\": \"2.11.0\", \"arch\": \"sm_90\""
                + (fields == null ? "" : ", " + fields) + "}");
        return FusedKernels.builtWith(FusedKernels.BuildRecord.read(dir.resolve(FusedKernels.LIBRARY)));
    }

    /**
     * The fingerprint of the sources the jar carries, against one computed here from the source tree
     * with the recipe tools/gpu/build_kernels.py follows (name, NUL, bytes, NUL per file, in order).
     */
    @Test
    void theFingerprintIsTheBuildScriptsRecipeOverTheSourceTree() throws Exception {
        java.security.MessageDigest sha = java.security.MessageDigest.getInstance("SHA-256");
        for (String name : new String[] {"anneal_kernels.cu", "anneal_kernels.h", "anneal_ops.cpp"}) {
            sha.update((name + "\0").getBytes(java.nio.charset.StandardCharsets.UTF_8));
            sha.update(Files.readAllBytes(Path.of("src/main/native", name)));
            sha.update(new byte[] {0});
        }
        assertEquals(java.util.HexFormat.of().formatHex(sha.digest()), FusedKernels.sourcesFingerprint());
    }

    @Test
    void aLibraryWithoutItsBuildRecordIsRefused(@TempDir Path dir) throws Exception {
        Path library = dir.resolve(FusedKernels.LIBRARY);
        Files.writeString(library, "not loaded");
        assertTrue(FusedKernels.mismatch(library, Device.gpu()).contains("anneal_ops.json is missing"));
        Files.writeString(dir.resolve("anneal_ops.json"), "{not json");
        assertTrue(FusedKernels.mismatch(library, Device.gpu()).contains("is not readable JSON"));
    }
}
