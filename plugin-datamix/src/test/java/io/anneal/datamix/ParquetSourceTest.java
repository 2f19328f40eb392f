package io.anneal.datamix;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.toolkit.chat.PreferenceRecord;
import io.anneal.datamix.parquet.ColumnCursor;
import io.anneal.datamix.parquet.ParquetFile;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Parquet sources against the same records as JSONL. The fixtures in src/test/resources/parquet are
 * written by pyarrow (tools/data/make_parquet_fixtures.py) from JSONL records written beside them, so
 * the JSONL reader is the independent reference for every record, token and mask.
 */
class ParquetSourceTest {
    static final String[] CHAT_FIXTURES = {"chat-snappy.parquet", "chat-zstd.parquet", "chat-none.parquet",
        "chat-gzip-v2-delta.parquet", "chat-plain-required.parquet"};

    static Path fixture(String name) {
        try {
            return Path.of(ParquetSourceTest.class.getResource("/parquet/" + name).toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Every row of a file as the index pass sees it: records, or "PROBLEM where: what". */
    static List<Object> rows(Path file) {
        List<Object> out = new ArrayList<>();
        if (file.toString().endsWith(".parquet")) {
            ParquetChatRows.scan(file, (position, length, location, record, problem) ->
                    out.add(record != null ? record : "PROBLEM " + ParquetChatRows.describe(location) + ": " + problem));
        } else {
            RecordParser parser = new RecordParser();
            for (String line : lines(file)) {
                try {
                    out.add(parser.parseChat(line.getBytes(StandardCharsets.UTF_8), 0, line.getBytes(StandardCharsets.UTF_8).length));
                } catch (RecordParser.BadRecordException e) {
                    out.add("PROBLEM " + e.getMessage());
                }
            }
        }
        return out;
    }

    private static List<String> lines(Path file) {
        try {
            return Files.readAllLines(file, StandardCharsets.UTF_8).stream().filter(l -> !l.isBlank()).toList();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void everyCodecEncodingAndPageVersionGivesTheJsonlRecords() {
        List<Object> expected = rows(fixture("chat.jsonl"));
        assertEquals(80, expected.size());
        assertTrue(expected.stream().allMatch(r -> r instanceof ChatRecord), "the reference parses");
        for (String f : CHAT_FIXTURES) {
            assertEquals(expected, rows(fixture(f)), f);
        }
    }

    @Test
    void pagesStreamOneAtATime() {
        // chat-zstd.parquet is written with ~256-byte pages: each column chunk of 16 rows spans several pages.
        try (ParquetFile file = ParquetFile.open(fixture("chat-zstd.parquet"))) {
            assertEquals(5, file.rowGroups(), "80 rows in row groups of 16");
            ParquetFile.Node content = file.root().child("messages").children.get(0).children.get(0).child("content");
            // optional messages (1), repeated list (2), optional element (3), optional content (4); one repeated node.
            assertEquals(4, content.maxDefinition);
            assertEquals(1, content.maxRepetition);
            ColumnCursor c = file.column(0, content);
            int entries = 0;
            while (c.next()) {
                entries++;
            }
            assertTrue(c.dataPages() > 1, "pages read: " + c.dataPages());
            assertTrue(entries > 16, "one entry per message of 16 rows: " + entries);
        }
    }

    private static MixTrainingData single(Path dir, Path data, boolean cache) {
        java.util.Map<String, Object> o = new java.util.LinkedHashMap<>();
        o.put("tokenizer", TestContext.examples().resolve("tokenizer/tokenizer.json").toString());
        o.put("cache", cache);
        o.put("cache-dir", dir.resolve("caches").toString());
        o.put("seed", 21);
        o.put("sources", List.of(java.util.Map.of("name", "chat", "path", data.toString(), "weight", 1.0)));
        return new MixTrainingData.Factory().create(MixConfig.mix(o), new TestContext(dir));
    }

    @Test
    void parquetGivesTheJsonlTokenStreamWithAndWithoutCache(@TempDir Path dir) {
        List<long[]> reference = new ArrayList<>();
        try (MixStream s = single(dir, fixture("chat.jsonl"), false).open(300)) {
            for (int i = 0; i < 40; i++) { // 40 x 2 x 300 = 24K tokens: several epochs of the 80 records
                reference.add(new long[] {TokenCacheTest.hash(0, s.next(2))});
            }
            assertTrue(s.progress().get(0).epochs() > 2, s.progress().toString());
        }
        for (String f : CHAT_FIXTURES) {
            for (boolean cache : new boolean[] {true, false}) {
                try (MixStream s = single(dir, fixture(f), cache).open(300)) {
                    for (int i = 0; i < reference.size(); i++) {
                        assertEquals(reference.get(i)[0], TokenCacheTest.hash(0, s.next(2)), f + " cache=" + cache + " batch " + i);
                    }
                }
            }
        }
    }

    @Test
    void aFolderMixesJsonlAndParquetShards(@TempDir Path dir) throws IOException {
        Path shards = Files.createDirectories(dir.resolve("shards"));
        Files.copy(fixture("chat.jsonl"), shards.resolve("a.jsonl"));
        Files.copy(fixture("chat-zstd.parquet"), shards.resolve("b.parquet"));
        ChatSource[] s = single(dir, shards, true).openSources(new ArrayList<>());
        assertEquals(2, s[0].files.size());
        assertEquals(160, s[0].records());
        assertEquals(s[0].files.get(0).tokens, s[0].files.get(1).tokens, "the same records, the same tokens");
    }

    @Test
    void preferenceFormsMatchTheirJsonl() throws Exception {
        RecordParser parser = new RecordParser();
        for (String form : new String[] {"preferences-messages", "preferences-prompt", "preferences-text"}) {
            List<PreferenceRecord> expected = new ArrayList<>();
            for (String line : lines(fixture(form + ".jsonl"))) {
                byte[] b = line.getBytes(StandardCharsets.UTF_8);
                expected.add(parser.parsePreference(b, 0, b.length));
            }
            List<PreferenceRecord> got = new ArrayList<>();
            ParquetChatRows.preferences(fixture(form + ".parquet"), got::add);
            assertEquals(expected, got, form);
        }
        // The shared-turns form: the user turn both answers share became the prompt (as in the JSONL form).
        List<PreferenceRecord> got = new ArrayList<>();
        ParquetChatRows.preferences(fixture("preferences-messages.parquet"), got::add);
        assertEquals(1, got.get(0).prompt().size());
        assertEquals("What is 83 * 97?", got.get(0).prompt().get(0).content());
        assertEquals("83 * 97 = 8051", got.get(0).chosen().get(0).content());
    }

    @Test
    void badRowsNameTheFileRowGroupAndRow() {
        // bad-rows.parquet: row group 0 = 3 good rows; row group 1 = null messages, a null element,
        // a null role, a null content, role 'tool', an empty list, a good row (the generator's comments).
        List<Object> rows = rows(fixture("bad-rows.parquet"));
        assertEquals(10, rows.size());
        assertEquals(List.of(
                "PROBLEM row group 1, row 0: \"messages\" to be a list of {\"role\", \"content\"} objects, found null",
                "PROBLEM row group 1, row 1: \"messages\"[1] to be an object {\"role\", \"content\"}, found null",
                "PROBLEM row group 1, row 2: \"messages\"[0].role to be a string, found null",
                "PROBLEM row group 1, row 3: \"messages\"[1].content to be a string, found null"), rows.subList(3, 7));
        // role 'tool' is read (TRL's tool turns); that row has no assistant turn, so it supervises nothing
        assertTrue(rows.get(7) instanceof ChatRecord, String.valueOf(rows.get(7)));
        assertEquals("PROBLEM row group 1, row 5: at least one message in \"messages\", found an empty list", rows.get(8));
        assertTrue(rows.get(9) instanceof ChatRecord && rows.get(0).equals(rows.get(9)), "the rows after the bad ones stay aligned");
    }

    @Test
    void badRowsFailOrAreSkippedAndCounted(@TempDir Path dir) throws IOException {
        Path bad = fixture("bad-rows.parquet");
        HfTokenizer tokenizer = HfTokenizer.load(TestContext.examples().resolve("tokenizer/tokenizer.json"));
        ChatMlTemplate t = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true);
        InputException e = assertThrows(InputException.class,
                () -> ChatSource.open("bad", 1, bad, t, tokenizer, OnError.FAIL, CacheFiles.OFF));
        assertTrue(e.getMessage().startsWith(bad + ": row group 1, row 0: expected \"messages\" to be a list"), e.getMessage());
        assertTrue(e.getMessage().contains("set on-error = skip"), e.getMessage());
        ChatSource s = ChatSource.open("bad", 1, bad, t, tokenizer, OnError.SKIP, new CacheFiles(true, dir));
        assertEquals(4, s.records());
        assertEquals(5, s.files.get(0).skippedBad);
        assertTrue(s.loadReport().contains("skipped 5 bad records"), s.loadReport());
        assertEquals(bad + ": row group 1, row 1: expected \"messages\"[1] to be an object {\"role\", \"content\"}, found null",
                s.problems().get(1));
        // The uncached path re-reads the file and finds the same four records.
        ChatSource uncached = ChatSource.open("bad", 1, bad, t, tokenizer, OnError.SKIP, CacheFiles.OFF);
        for (int i = 0; i < 4; i++) {
            assertArrayEquals(t.render(uncached.read(0, i)).ids(), s.document(0, i).ids());
        }
        s.close();
        uncached.close();
    }

    @Test
    void schemaProblemsAndNonParquetFilesNameTheFile() {
        Path missing = fixture("bad-missing-column.parquet");
        InputException e = assertThrows(InputException.class, () -> rows(missing));
        assertEquals(missing + ": expected a column messages (a list of struct{role: string, content: string}), found the columns "
                + "[conversation]", e.getMessage());
        Path type = fixture("bad-role-type.parquet");
        e = assertThrows(InputException.class, () -> rows(type));
        assertEquals(type + ": column messages: expected a list of struct{role: string, content: string} or a string, found optional "
                + "group messages { repeated group list { optional group element { optional int32 role; optional byte_array content } } }",
                e.getMessage());
        Path text = fixture("not-parquet.parquet");
        e = assertThrows(InputException.class, () -> rows(text));
        assertEquals(text + ": expected a Parquet file (it starts and ends with PAR1), found a file starting with '{\"me'", e.getMessage());
    }
}
