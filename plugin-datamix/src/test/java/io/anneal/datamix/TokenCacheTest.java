package io.anneal.datamix;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import io.anneal.api.data.PackedBatch;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The token cache: the cached stream is the uncached one, token for token; stale or damaged caches are rebuilt. */
class TokenCacheTest {

    /** FNV-1a over ids, labels, positions and document ids of each batch, in that order. */
    static long hash(long h, PackedBatch b) {
        for (int[] a : new int[][] {b.inputIds(), b.labels(), b.positionIds(), b.documentIds()}) {
            for (int v : a) {
                h = (h ^ v) * 0x100000001b3L;
            }
        }
        return h;
    }

    @Test
    void streamHashOverTwoMillionTokensIsUnchanged() {
        // 53112b60ff60ec8b was computed with the code before the token cache existed (commit 58045f7,
        // every record re-read and re-tokenised at each draw): 3 bundled sources, seed 42, leftover = pad,
        // L = 1000, 210 batches of 10 rows = 2.1M tokens. The cached stream must give the same bytes.
        for (boolean cache : new boolean[] {true, false}) {
            try (MixStream s = MixAndResumeTest.bundled(42, "pad", cache).open(1000)) {
                long h = 0xcbf29ce484222325L;
                for (int i = 0; i < 210; i++) {
                    h = hash(h, s.next(10));
                }
                assertEquals(2_100_000, s.emittedTokens());
                assertEquals("53112b60ff60ec8b", Long.toHexString(h), "cache = " + cache);
                if (cache) {
                    assertEquals(0, s.stageNanos()[1], "the cached stream never calls the tokenizer");
                }
            }
        }
    }

    @Test
    void cachedStreamEqualsUncachedOverEpochsAndAcrossResume() {
        // ~110K tokens per epoch of the three sources: 1.2M tokens is several epochs of each (reshuffled each time).
        MixTrainingData cached = MixAndResumeTest.bundled(8, "split", true);
        MixTrainingData uncached = MixAndResumeTest.bundled(8, "split", false);
        byte[] state;
        List<PackedBatch> rest = new ArrayList<>();
        try (MixStream a = cached.open(777); MixStream b = uncached.open(777)) {
            for (int i = 0; i < 400; i++) {
                assertSameBatch(b.next(2), a.next(2), "batch " + i);
            }
            assertTrue(a.progress().stream().allMatch(p -> p.epochs() > 3), a.progress().toString());
            state = a.saveState(); // mid-chunk, mid-document (split)
            for (int i = 0; i < 60; i++) {
                rest.add(a.next(2));
            }
        }
        // A cached stream's state resumes an uncached stream exactly, and the reverse.
        try (MixStream b = uncached.open(777)) {
            b.restoreState(state);
            for (PackedBatch expected : rest) {
                assertSameBatch(expected, b.next(2), "uncached after resume");
            }
            state = b.saveState();
        }
        try (MixStream a = cached.open(777); MixStream b = uncached.open(777)) {
            a.restoreState(state);
            b.restoreState(state);
            for (int i = 0; i < 60; i++) {
                assertSameBatch(b.next(2), a.next(2), "cached after resume from an uncached state");
            }
        }
    }

    static void assertSameBatch(PackedBatch expected, PackedBatch got, String what) {
        assertArrayEquals(expected.inputIds(), got.inputIds(), what + ": ids");
        assertArrayEquals(expected.labels(), got.labels(), what + ": labels (the loss mask)");
        assertArrayEquals(expected.positionIds(), got.positionIds(), what + ": positions");
        assertArrayEquals(expected.documentIds(), got.documentIds(), what + ": documents");
    }

    @Test
    void documentsRoundTripInBothIdWidths(@TempDir Path dir) throws IOException {
        // Independent expectation: the documents handed to the writer. Masks that start and end
        // supervised, an all-supervised one, an empty one; ids at the uint16 limit and past it.
        Document[] docs = {
            new Document(new int[] {1, 2, 3, 65_535}, new boolean[] {true, false, false, true}, 1, 0),
            new Document(new int[] {}, new boolean[] {}, 0, 0),
            new Document(new int[] {7, 7, 7}, new boolean[] {true, true, true}, 2, 1),
            new Document(new int[] {0, 300, 40_000}, new boolean[] {false, false, false}, 0, 0),
        };
        assertEquals(2, TokenCache.idWidth(65_536));
        assertEquals(4, TokenCache.idWidth(65_537));
        for (int vocabulary : new int[] {65_536, 200_000}) {
            Path file = dir.resolve("w" + vocabulary + TokenCache.SUFFIX);
            Document[] written = docs.clone();
            if (vocabulary > 65_536) {
                written = java.util.Arrays.copyOf(docs, docs.length + 1);
                written[docs.length] = new Document(new int[] {65_536, 199_999}, new boolean[] {false, true}, 1, 0);
            }
            try (TokenCache.Writer w = new TokenCache.Writer(file, "k", vocabulary)) {
                for (Document d : written) {
                    w.append(d);
                }
                w.commit();
            }
            assertSameDocuments(written, TokenCache.open(file, "k", written.length, vocabulary), file);
            assertNull(TokenCache.open(file, "other key", written.length, vocabulary), "another key is not trusted");
            assertNull(TokenCache.open(file, "k", written.length + 1, vocabulary), "another record count is not trusted");
        }
        // Bytes per record, counted by hand from the layout (CRC 4, four 1-byte varints, runs, ids at 2 bytes):
        // [1,2,3,65535] mask TFFT: runs 0,1,2,1 -> 4 + 4 + 4 + 8 = 20; empty: one run 0 -> 4 + 4 + 1 = 9;
        // [7,7,7] all supervised: runs 0,3 -> 4 + 4 + 2 + 6 = 16; [0,300,40000] none: run 3 -> 4 + 4 + 1 + 6 = 15.
        TokenCache.Reader narrow = TokenCache.open(dir.resolve("w65536" + TokenCache.SUFFIX), "k", docs.length, 65_536);
        assertEquals(20 + 9 + 16 + 15, narrow.dataBytes());
    }

    /** The names in {@code dir}, sorted. */
    private static List<String> names(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private static void assertSameDocuments(Document[] expected, TokenCache.Reader r, Path file) throws IOException {
        assertNotNull(r, file + " reads back");
        assertEquals(expected.length, r.records());
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer[] scratch = new ByteBuffer[1];
            for (int i = 0; i < expected.length; i++) {
                Document got = r.read(i, c, scratch);
                assertArrayEquals(expected[i].ids(), got.ids(), "ids of " + i);
                assertArrayEquals(expected[i].supervised(), got.supervised(), "mask of " + i);
                assertEquals(expected[i].assistantTurns(), got.assistantTurns());
                assertEquals(expected[i].eosMasked(), got.eosMasked());
            }
        }
    }

    @Test
    void eachWriterGetsItsOwnTemporaryFileBesideTheTarget(@TempDir Path dir) throws IOException {
        Path target = dir.resolve("units.jsonl" + TokenCache.SUFFIX);
        Path a = CacheFiles.temporaryFor(target);
        Path b = CacheFiles.temporaryFor(target);
        assertFalse(a.equals(b));
        for (Path tmp : List.of(a, b)) {
            assertEquals(dir.toAbsolutePath(), tmp.getParent(), "in the target's folder: the rename stays on one file system");
            String name = tmp.getFileName().toString();
            assertTrue(name.startsWith("units.jsonl" + TokenCache.SUFFIX + ".") && name.endsWith(CacheFiles.TEMPORARY_SUFFIX), name);
            assertEquals(0, Files.size(tmp));
        }
        if (Files.getFileStore(dir).supportsFileAttributeView("posix")) {
            // The cache is this file renamed: as readable as any new file (the umask's), not owner-only.
            Path plain = Files.createFile(dir.resolve("plain"));
            assertEquals(Files.getPosixFilePermissions(plain), Files.getPosixFilePermissions(a));
        }
    }

    @Test
    void twoWritersOfOneCacheBothCommit(@TempDir Path dir) throws IOException {
        // Three `anneal run` started together on one data file all built its token cache: with one fixed
        // temporary name (<cache>.tmp) the first to commit renamed the file the others were still writing,
        // and their commit failed with "cannot write the token cache: <cache>.tmp". Two processes, one
        // thread: both writers open, the same documents through both, then one commit after the other.
        Document[] docs = {
            new Document(new int[] {1, 2, 3, 4}, new boolean[] {false, false, true, true}, 1, 0),
            new Document(new int[] {9, 8, 7}, new boolean[] {false, true, true}, 1, 1),
        };
        Path file = dir.resolve("units.jsonl" + TokenCache.SUFFIX);
        try (TokenCache.Writer first = new TokenCache.Writer(file, "k", 1000);
                TokenCache.Writer second = new TokenCache.Writer(file, "k", 1000)) {
            for (Document d : docs) {
                first.append(d);
                second.append(d);
            }
            first.commit();
            assertSameDocuments(docs, TokenCache.open(file, "k", docs.length, 1000), file);
            second.commit(); // the last one wins: the same bytes, complete
        }
        assertSameDocuments(docs, TokenCache.open(file, "k", docs.length, 1000), file);
        assertEquals(List.of(file.getFileName().toString()), names(dir), "the cache and no temporary file");
    }

    @Test
    void aWriterClosedWithoutCommitLeavesNoTemporaryFile(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("one.jsonl" + TokenCache.SUFFIX);
        Document d = new Document(new int[] {5, 6}, new boolean[] {false, true}, 1, 0);
        try (TokenCache.Writer w = new TokenCache.Writer(file, "k", 1000)) {
            w.append(d);
            assertEquals(1, names(dir).size(), "the writer's temporary file: " + names(dir));
        } // no commit: a failed index pass
        assertEquals(List.of(), names(dir));

        // Nor does it take another writer's file with it: one pass fails while another goes on.
        try (TokenCache.Writer going = new TokenCache.Writer(file, "k", 1000)) {
            try (TokenCache.Writer failing = new TokenCache.Writer(file, "k", 1000)) {
                failing.append(d);
                going.append(d);
            }
            going.commit();
        }
        assertSameDocuments(new Document[] {d}, TokenCache.open(file, "k", 1, 1000), file);
        assertEquals(List.of(file.getFileName().toString()), names(dir));
    }

    @Test
    void aFailedIndexPassLeavesNoTemporaryFile(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("bad.jsonl");
        Files.writeString(f, TemplateAndPackingTest.HI_OK_JSON + "\n{\"messages\": 3}\n");
        HfTokenizer tokenizer = HfTokenizer.load(TestContext.tinyTokenizer());
        ChatMlTemplate t = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true);
        InputException e = assertThrows(InputException.class,
                () -> SourceFile.open(f, t, tokenizer, OnError.FAIL, CacheFiles.NEXT_TO_FILE));
        assertTrue(e.getMessage().contains("bad.jsonl:2"), e.getMessage());
        assertEquals(List.of("bad.jsonl"), names(dir), "the pass's temporary token cache is gone");
    }

    @Test
    void anIndexPassBesideAnotherBuildOfTheSameCache(@TempDir Path dir) throws IOException {
        // SourceFile.open runs its index pass to the end in one call, so the other process is a writer
        // opened on the same cache before it and committed after it, with the same key and documents.
        Path f = dir.resolve("dialog.jsonl");
        Files.copy(TestContext.examples().resolve("data/dialog.jsonl"), f);
        HfTokenizer tokenizer = HfTokenizer.load(TestContext.examples().resolve("tokenizer/tokenizer.json"));
        ChatMlTemplate t = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true);
        Path tokens = CacheFiles.NEXT_TO_FILE.locate(f, TokenCache.SUFFIX);
        Path index = CacheFiles.NEXT_TO_FILE.locate(f, ".anneal-index");
        int vocabulary = tokenizer.vocabularySize();

        // What the other process writes: the documents and key of a build of the same file.
        SourceFile built = SourceFile.open(f, t, tokenizer, OnError.FAIL, CacheFiles.NEXT_TO_FILE);
        assertFalse(built.fromCache);
        String key;
        try (java.io.DataInputStream in = new java.io.DataInputStream(Files.newInputStream(tokens))) {
            in.readInt();
            in.readInt();
            key = in.readUTF();
        }
        Document[] docs = new Document[built.records()];
        try (FileChannel c = FileChannel.open(tokens, StandardOpenOption.READ)) {
            ByteBuffer[] scratch = new ByteBuffer[1];
            for (int i = 0; i < docs.length; i++) {
                docs[i] = built.tokenCache.read(i, c, scratch);
            }
        }
        assertTrue(docs.length > 100, "records: " + docs.length);
        Files.delete(tokens);
        Files.delete(index);

        try (TokenCache.Writer other = new TokenCache.Writer(tokens, key, vocabulary)) {
            for (int i = 0; i < docs.length / 2; i++) {
                other.append(docs[i]);
            }
            SourceFile pass = SourceFile.open(f, t, tokenizer, OnError.FAIL, CacheFiles.NEXT_TO_FILE);
            assertFalse(pass.fromCache);
            assertEquals(docs.length, pass.records());
            for (int i = docs.length / 2; i < docs.length; i++) {
                other.append(docs[i]);
            }
            other.commit();
        }
        SourceFile again = SourceFile.open(f, t, tokenizer, OnError.FAIL, CacheFiles.NEXT_TO_FILE);
        assertTrue(again.fromCache, "the other process's cache is the same cache");
        assertSameDocuments(docs, again.tokenCache, tokens);
        assertEquals(List.of("dialog.jsonl", "dialog.jsonl.anneal-index", "dialog.jsonl" + TokenCache.SUFFIX), names(dir),
                "no temporary file left");
    }

    /** A mix of one plain JSONL file and a folder of gzip shards, copied to {@code dir}. */
    private static MixTrainingData copied(Path dir, boolean superviseEos, String cacheDir) throws IOException {
        Path data = dir.resolve("data");
        if (!Files.exists(data)) {
            Files.createDirectories(data.resolve("words"));
            Path examples = TestContext.examples().resolve("data");
            Files.copy(examples.resolve("dialog.jsonl"), data.resolve("dialog.jsonl"));
            try (Stream<Path> shards = Files.list(examples.resolve("words"))) {
                for (Path p : shards.filter(p -> p.toString().endsWith(".gz")).toList()) {
                    Files.copy(p, data.resolve("words").resolve(p.getFileName()));
                }
            }
        }
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("tokenizer", TestContext.examples().resolve("tokenizer/tokenizer.json").toString());
        o.put("supervise-eos", superviseEos);
        o.put("seed", 3);
        if (cacheDir != null) {
            o.put("cache-dir", cacheDir);
        }
        o.put("sources", List.of(Map.of("name", "dialog", "path", "data/dialog.jsonl", "weight", 0.5),
                Map.of("name", "words", "path", "data/words", "weight", 0.5)));
        return new MixTrainingData.Factory().create(MixConfig.mix(o), new TestContext(dir));
    }

    private static long firstBatchesHash(MixTrainingData data) {
        try (MixStream s = data.open(256)) {
            long h = 0xcbf29ce484222325L;
            for (int i = 0; i < 30; i++) {
                h = hash(h, s.next(4));
            }
            return h;
        }
    }

    @Test
    void cachesAreKeyedAndDamagedOnesAreRebuilt(@TempDir Path dir) throws IOException {
        long expected = firstBatchesHash(copied(dir, true, null));
        Path dialog = dir.resolve("data/dialog.jsonl");
        Path tokens = dir.resolve("data/dialog.jsonl" + TokenCache.SUFFIX);
        Path shardTokens = dir.resolve("data/words/words-00001.jsonl.gz" + TokenCache.SUFFIX);
        assertTrue(Files.isRegularFile(tokens) && Files.isRegularFile(shardTokens), "one cache per file, gzip shards included");
        assertTrue(Files.isRegularFile(dir.resolve("data/dialog.jsonl.anneal-index")));

        // Reused as is: a second instance loads both sources from the caches.
        ChatSource[] again = copied(dir, true, null).openSources(new ArrayList<>());
        assertTrue(again[0].files.get(0).fromCache && again[1].files.get(2).fromCache);
        assertEquals(expected, firstBatchesHash(copied(dir, true, null)));

        // Another template setting is another key: rebuilt, and the stream follows the new masks.
        ChatSource[] otherKey = copied(dir, false, null).openSources(new ArrayList<>());
        assertFalse(otherKey[0].files.get(0).fromCache, "supervise-eos is part of the key");
        long withoutEos = firstBatchesHash(copied(dir, false, null));
        assertFalse(expected == withoutEos, "the masks changed with supervise-eos");

        // A short cache is rebuilt, not trusted.
        copied(dir, true, null).openSources(new ArrayList<>());
        long size = Files.size(tokens);
        try (FileChannel c = FileChannel.open(tokens, StandardOpenOption.WRITE)) {
            c.truncate(size - 7);
        }
        ChatSource[] rebuilt = copied(dir, true, null).openSources(new ArrayList<>());
        assertFalse(rebuilt[0].files.get(0).fromCache, "a truncated cache is rebuilt");
        assertEquals(size, Files.size(tokens));
        assertEquals(expected, firstBatchesHash(copied(dir, true, null)));

        // A flipped byte inside a record is caught by its checksum when read, with the file to delete.
        byte[] bytes = Files.readAllBytes(tokens);
        bytes[200] ^= 0x5a;
        Files.write(tokens, bytes);
        MixTrainingData damaged = copied(dir, true, null);
        InputException e = assertThrows(InputException.class, () -> {
            try (MixStream s = damaged.open(256)) {
                for (int i = 0; i < 400; i++) { // far past one epoch of dialog: every record is read
                    s.next(4);
                }
            }
        });
        assertTrue(e.getMessage().contains(tokens + ": the token cache is damaged at record"), e.getMessage());
        assertTrue(e.getMessage().contains("delete " + tokens), e.getMessage());

        // A changed data file (new size and mtime) is a new key.
        Files.writeString(dialog, TemplateAndPackingTest.HI_OK_JSON.replace("hi", "hello") + "\n");
        ChatSource[] changed = copied(dir, true, null).openSources(new ArrayList<>());
        assertEquals(1, changed[0].records());
        assertFalse(changed[0].files.get(0).fromCache);
    }

    @Test
    void cacheDirHoldsTheCachesAndTheDataFolderStaysUntouched(@TempDir Path dir) throws IOException {
        MixTrainingData data = copied(dir, true, "caches");
        long h = firstBatchesHash(data);
        try (Stream<Path> files = Files.walk(dir.resolve("data"))) {
            assertTrue(files.noneMatch(p -> p.toString().contains(".anneal-")), "nothing written next to the data");
        }
        List<String> names;
        try (Stream<Path> files = Files.list(dir.resolve("caches"))) {
            names = files.map(p -> p.getFileName().toString()).sorted().toList();
        }
        // 4 files (dialog + 3 shards) x (index + tokens), named <file>-<16 hex>.anneal-*
        assertEquals(8, names.size(), names.toString());
        assertTrue(names.stream().allMatch(n -> n.matches("(dialog\\.jsonl|words-0000[0-2]\\.jsonl\\.gz)-[0-9a-f]{16}\\.anneal-(index|tokens)")),
                names.toString());
        assertEquals(h, firstBatchesHash(copied(dir, true, null)), "caches elsewhere, same stream");

        // A cache-dir that cannot be a folder names the setting.
        Files.writeString(dir.resolve("blocked"), "a file, not a folder");
        InputException e = assertThrows(InputException.class, () -> copied(dir, true, "blocked/sub").open(64));
        assertTrue(e.getMessage().contains("data.cache-dir"), e.getMessage());
    }

    @Test
    void cacheFalseWritesNothing(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("one.jsonl");
        Files.writeString(f, TemplateAndPackingTest.HI_OK_JSON + "\n");
        HfTokenizer tokenizer = HfTokenizer.load(TestContext.tinyTokenizer());
        ChatMlTemplate t = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true);
        ChatSource s = ChatSource.open("one", 1, f, t, tokenizer, OnError.FAIL, CacheFiles.OFF);
        assertFalse(s.cached());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(1, files.count(), "only the data file");
        }
        ChatSource c = ChatSource.open("one", 1, f, t, tokenizer, OnError.FAIL, CacheFiles.NEXT_TO_FILE);
        assertTrue(c.cached());
        assertArrayEquals(TemplateAndPackingTest.HI_OK, c.document(0, 0).ids(), "the cached document is the hand-rendered one");
        c.close();
    }
}
