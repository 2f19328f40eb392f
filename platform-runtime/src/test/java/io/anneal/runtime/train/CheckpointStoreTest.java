package io.anneal.runtime.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CheckpointStoreTest {

    private static CheckpointStore.Writer files(String content) {
        return dir -> {
            Files.createDirectories(dir.resolve("model"));
            Files.writeString(dir.resolve("model/weights.bin"), content);
            Files.writeString(dir.resolve("trainer-state.json"), "{\"step\": \"" + content + "\"}");
        };
    }

    private static List<String> entries(Path root) throws IOException {
        try (Stream<Path> s = Files.list(root)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void commitsWithAMarkerAndResumesFromTheNewest(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 3);
        store.write(2, files("two"));
        store.write(10, files("ten"));
        assertEquals(List.of("step-000002", "step-000010"), entries(root), "no temp folder is left");
        assertTrue(Files.exists(root.resolve("step-000010/COMPLETE")));
        assertEquals(10, store.latestComplete().orElseThrow().step());
        assertEquals("ten", Files.readString(store.latestComplete().orElseThrow().directory().resolve("model/weights.bin")));
    }

    @Test
    void aWriteThatFailsMidwayLeavesThePreviousCheckpointAndNoPartialFolder(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 3);
        store.write(2, files("two"));
        IOException e = assertThrows(IOException.class, () -> store.write(4, dir -> {
            files("four").writeInto(dir);
            throw new IOException("No space left on device");
        }));
        assertEquals("No space left on device", e.getMessage());
        assertEquals(List.of("step-000002"), entries(root));
        CheckpointStore.Checkpoint latest = store.latestComplete().orElseThrow();
        assertEquals(2, latest.step());
        assertEquals("two", Files.readString(latest.directory().resolve("model/weights.bin")));
    }

    @Test
    void folderWithoutMarkerIsNeverResumedAndIsCleanedUp(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 3);
        store.write(2, files("two"));
        // a crash after the rename but before COMPLETE, and one in the middle of writing
        Files.createDirectories(root.resolve("step-000004/model"));
        Files.createDirectories(root.resolve("step-000006.tmp-abcdef/model"));
        assertEquals(2, store.latestComplete().orElseThrow().step());
        assertEquals(2, store.removeIncomplete().size());
        assertEquals(List.of("step-000002"), entries(root));
        // the step can then be written again
        store.write(4, files("four"));
        assertEquals(4, store.latestComplete().orElseThrow().step());
    }

    @Test
    void rotationKeepsTheNewestAndNeverTheResumedOne(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 2);
        for (long step : new long[] {2, 4, 6}) {
            store.write(step, files("s" + step));
        }
        // resumed from step 4; then steps 8 and 10 are committed with keep-last = 2
        Optional<Long> resumedFrom = Optional.of(4L);
        store.rotate(resumedFrom);
        assertEquals(List.of("step-000004", "step-000006"), entries(root));
        store.write(8, files("s8"));
        store.rotate(resumedFrom);
        // the newest two (6, 8) plus the resumed one (4)
        assertEquals(List.of("step-000004", "step-000006", "step-000008"), entries(root));
        store.write(10, files("s10"));
        List<Path> deleted = store.rotate(resumedFrom);
        assertEquals(List.of(root.resolve("step-000006")), deleted);
        assertEquals(List.of("step-000004", "step-000008", "step-000010"), entries(root));
        assertEquals("s4", Files.readString(root.resolve("step-000004/model/weights.bin")));
    }

    @Test
    void refusesToOverwriteACommittedCheckpoint(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 2);
        store.write(2, files("two"));
        assertThrows(IOException.class, () -> store.write(2, files("again")));
        assertEquals("two", Files.readString(root.resolve("step-000002/model/weights.bin")));
        assertEquals(List.of("step-000002"), entries(root));
    }

    @Test
    void aManifestListsTheSha256OfEveryFile(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 3);
        store.write(1, files("abc"));
        // FIPS 180-2's test vector: SHA-256("abc")
        assertEquals(List.of("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  model/weights.bin",
                        hexSha256("{\"step\": \"abc\"}") + "  trainer-state.json"),
                Files.readAllLines(root.resolve("step-000001/" + CheckpointStore.MANIFEST)));
        assertEquals(Optional.empty(), CheckpointStore.verify(store.latestComplete().orElseThrow()));
    }

    @Test
    void aDamagedNewestCheckpointIsSetAsideNamedAndTheOlderOneResumes(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 3);
        store.write(2, files("two"));
        store.write(4, files("four"));
        Files.writeString(root.resolve("step-000004/model/weights.bin"), "fouR"); // one flipped byte
        List<String> heard = new java.util.ArrayList<>();
        Optional<CheckpointStore.Checkpoint> intact = store.latestIntact(c -> Optional.empty(), (c, why) -> heard.add(c.step() + ": " + why));
        assertEquals(2, intact.orElseThrow().step());
        assertEquals(1, heard.size());
        assertTrue(heard.get(0).startsWith("4: " + root.resolve("step-000004/model/weights.bin") + " does not match its SHA-256"),
                heard.get(0));
        assertEquals(List.of("damaged-step-000004", "step-000002"), entries(root));
    }

    @Test
    void aMissingFileIsNamedAndACheckpointFromBeforeManifestsCountsAsIntact(@TempDir Path root) throws IOException {
        CheckpointStore store = new CheckpointStore(root, 3);
        CheckpointStore.Checkpoint c = store.write(3, files("three"));
        Files.delete(root.resolve("step-000003/trainer-state.json"));
        assertEquals(Optional.of(root.resolve("step-000003/trainer-state.json") + " is missing (listed in MANIFEST.sha256)"),
                CheckpointStore.verify(c));
        Files.delete(root.resolve("step-000003/" + CheckpointStore.MANIFEST));
        assertEquals(Optional.empty(), CheckpointStore.verify(c));
    }

    private static String hexSha256(String text) {
        try {
            return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                    .digest(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
