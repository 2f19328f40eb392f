package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tools/gpu/benchmarks.sh peer-all} keeps the peer's Triton kernels from call to call: a first
 * call on a fresh machine compiles them (about 130 s, which a short call's bound cut off in stop 43)
 * and returns Triton's cache as {@code peer-triton-cache.tgz}; a kit holding it as
 * {@code triton-cache.tgz} fills TRITON_CACHE_DIR before the first run. Run without a GPU: the peer kit
 * here is a stand-in whose {@code python3} plays Triton, writing a compiled kernel into TRITON_CACHE_DIR
 * unless it is there already, and saying which.
 */
class BenchmarksPeerCacheIT {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();

    @Test
    void theFirstCallReturnsTheCompiledKernelsAndAKitWithThemCompilesNone(@TempDir Path dir) throws Exception {
        Path kit = standInPeerKit(dir.resolve("kit"));
        String first = run(dir, kit, dir.resolve("machine-1"), dir.resolve("out-1"));
        assertTrue(first.contains("peer: no Triton cache in the kit"), first);
        assertTrue(first.contains("stand-in peer 2x2048: compiled"), first);
        assertTrue(first.contains("stand-in peer 8x2048: from the cache"), first);
        assertTrue(first.contains("peer: Triton's cache grew from 0 to 1 files: peer-triton-cache.tgz in the results"), first);
        Path returned = untar(archive(dir.resolve("out-1"), first), dir.resolve("returned"), "bench/peer-triton-cache.tgz");

        // the next call, on another fresh machine, with the returned cache in its kit (pack.sh's copy)
        Files.copy(returned.resolve("bench/peer-triton-cache.tgz"), kit.resolve("triton-cache.tgz"));
        String second = run(dir, kit, dir.resolve("machine-2"), dir.resolve("out-2"));
        assertTrue(second.contains("peer: Triton's kernels from the kit's cache (1 files)"), second);
        assertTrue(second.contains("stand-in peer 2x2048: from the cache"), second);
        assertFalse(second.contains("cache grew"), second);
        Path unpacked = untar(archive(dir.resolve("out-2"), second), dir.resolve("second"), "bench/hf-fast.log");
        assertFalse(Files.exists(unpacked.resolve("bench/peer-triton-cache.tgz")), "nothing new to return");
    }

    /** A kit whose setup.sh puts a python3 first on PATH that plays the peer's first Triton compile. */
    private static Path standInPeerKit(Path kit) throws Exception {
        Files.createDirectories(kit.resolve("bin"));
        Files.writeString(kit.resolve("setup.sh"), "export PATH=\"" + kit.resolve("bin") + ":$PATH\"\n"
                + "echo \"peer kernels ready: stand-in\"\n");
        Path python = kit.resolve("bin/python3");
        Files.writeString(python, String.join("\n",
                "#!/usr/bin/env bash",
                "while [[ $# -gt 0 && $1 != --batch ]]; do shift; done",
                "kernel=$TRITON_CACHE_DIR/ssd/kernel.cubin",
                "if [[ -f $kernel ]]; then echo \"stand-in peer ${2}x2048: from the cache\"; else",
                "  mkdir -p \"$(dirname \"$kernel\")\" && echo cubin > \"$kernel\" && echo \"stand-in peer ${2}x2048: compiled\"; fi",
                ""));
        Files.setPosixFilePermissions(python, PosixFilePermissions.fromString("rwxr-xr-x"));
        return kit;
    }

    private static String run(Path dir, Path kit, Path cache, Path out) throws Exception {
        ProcessBuilder pb = new ProcessBuilder("bash", ROOT.resolve("tools/gpu/benchmarks.sh").toString(), "peer-all")
                .directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().put("OUT", out.toString());
        pb.environment().put("PEER_DIR", kit.toString());
        pb.environment().put("PEER_CACHE_DIR", cache.toString());
        pb.environment().put("PEER_ROWS", "2 8");
        Process p = pb.start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), log);
        return log;
    }

    private static Path archive(Path out, String log) throws Exception {
        try (Stream<Path> files = Files.list(out)) {
            return files.filter(f -> f.getFileName().toString().matches("bench-peer-all-\\d{6}\\.tgz")).findFirst()
                    .orElseThrow(() -> new AssertionError("no archive in " + out + ":\n" + log));
        }
    }

    /** member of archive unpacked under into (made here), which it returns. */
    private static Path untar(Path archive, Path into, String member) throws Exception {
        Files.createDirectories(into);
        Process tar = new ProcessBuilder(List.of("tar", "xzf", archive.toString(), "-C", into.toString(), member))
                .redirectErrorStream(true).start();
        String said = new String(tar.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, tar.waitFor(), said);
        return into;
    }
}
