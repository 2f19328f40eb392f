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
        Files.writeString(dir.resolve("anneal_ops.json"),
                "{\"torch\": \"1.13.0+cu117\", \"cuda\": \"11.7\", \"arch\": \"sm_80\"}");
        String why = FusedKernels.mismatch(library, Device.gpu());
        assertNotNull(why);
        assertTrue(why.contains("built for torch 1.13.0+cu117"), why);
        assertTrue(why.contains("DJL runs libtorch " + FusedKernels.engineVersion()), why);
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
