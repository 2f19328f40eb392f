package io.anneal.toolkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import io.anneal.api.InputException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The device choice and its one line, on machines described by hand, and what a libtorch folder says of itself. */
class DeviceChoiceTest {
    private static final Libtorch CPU = new Libtorch("2.7.1", "cpu", Path.of("/opt/libtorch"));
    private static final Libtorch CUDA = new Libtorch("2.7.1+cu128", "cu128", Path.of("/opt/torch/lib"));

    @Test
    void autoTakesTheGpuLibtorchSees() {
        DeviceChoice c = DeviceChoice.decide("auto", "pipeline.device", CUDA, 2, true);
        assertEquals(Device.gpu(), c.device());
        assertTrue(c.line().contains("libtorch 2.7.1 (cu128) from /opt/torch/lib; device gpu(0) (auto: 2 GPUs seen by libtorch)"),
                c.line());
    }

    @Test
    void aGpuMachineWithTheCpuLibtorchIsToldHowToFixIt() {
        DeviceChoice c = DeviceChoice.decide("auto", "pipeline.device", CPU, 0, true);
        assertEquals(Device.cpu(), c.device());
        assertTrue(c.line().contains("has an NVIDIA driver but this libtorch is the CPU build"), c.line());
        assertTrue(c.line().contains("bin/anneal --torch DIR"), c.line());
        assertTrue(DeviceChoice.decide("auto", "pipeline.device", CPU, 0, false).line().endsWith("(auto: no NVIDIA driver on this machine)"));
    }

    @Test
    void gpuWithoutOneIsBadInputSayingWhy() {
        InputException e = assertThrows(InputException.class, () -> DeviceChoice.decide("gpu", "pipeline.device", CPU, 0, true));
        assertTrue(e.getMessage().startsWith("pipeline.device = gpu, but libtorch 2.7.1 (cpu)"), e.getMessage());
        assertTrue(e.getMessage().contains("--torch"), e.getMessage());
        assertEquals("torch: ", DeviceChoice.decide("cpu", "pipeline.device", CUDA, 1, true).line().substring(0, 7));
        assertEquals(Device.cpu(), DeviceChoice.decide("cpu", "pipeline.device", CUDA, 1, true).device());
    }

    @Test
    void aPipTorchNamesItsVersionAndFlavourInVersionPy(@TempDir Path dir) throws Exception {
        Path lib = Files.createDirectories(dir.resolve("torch/lib"));
        Files.writeString(dir.resolve("torch/version.py"), "from typing import Optional\n__version__ = '2.11.0+cu130'\ncuda = '13.0'\n");
        Libtorch t = Libtorch.of(lib, "2.7.1");
        assertEquals("2.11.0+cu130", t.version());
        assertEquals("2.11.0", t.baseVersion());
        assertEquals("cu130", t.flavour());
        assertTrue(t.cuda());
    }

    @Test
    void djlsCacheFolderNamesVersionAndFlavour(@TempDir Path dir) throws Exception {
        Path cache = Files.createDirectories(dir.resolve("2.7.1-20250812-cpu-linux-x86_64"));
        Libtorch t = Libtorch.of(cache, "9.9.9");
        assertEquals("2.7.1", t.version());
        assertEquals("cpu", t.flavour());
        Path other = Files.createDirectories(dir.resolve("somewhere"));
        Files.writeString(other.resolve("libtorch_cuda.so"), "");
        assertEquals(new Libtorch("9.9.9", "cuda", other.toAbsolutePath().normalize()), Libtorch.of(other, "9.9.9"));
    }
}
