package io.anneal.datamix;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import io.anneal.api.data.PackedBatch;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ChatML rendering, loss masks and packing, against ids computed by hand from the tiny
 * tokenizer in src/test/resources/tiny/tokenizer.json:
 * <pre>
 *   0 &lt;|endoftext|&gt;  1 &lt;|im_start|&gt;  2 &lt;|im_end|&gt;  3 &lt;|pad|&gt;  4 "\n" (byte-level Ċ)
 *   5 a  6 e  7 h  8 i  9 k  10 m  11 n  12 o  13 r  14 s  15 t  16 u  17 y  18 Ġ
 *   merges: h i -> 19 "hi", o k -> 20 "ok", u s -> 21, us e -> 22, use r -> 23 "user"
 * </pre>
 * so "user\n" = [23, 4], "assistant\n" = a s s i s t a n t \n = [5,14,14,8,14,15,5,11,15,4],
 * "system\n" = [14,17,14,15,6,10,4], "hi" = [19], "ok" = [20].
 */
class TemplateAndPackingTest {
    static HfTokenizer tokenizer;

    // <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n, rendered by hand.
    static final int[] HI_OK = {1, 23, 4, 19, 2, 4, 1, 5, 14, 14, 8, 14, 15, 5, 11, 15, 4, 20, 2, 4};
    static final String HI_OK_JSON = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"ok\"}]}";

    @BeforeAll
    static void load() {
        tokenizer = HfTokenizer.load(TestContext.tinyTokenizer());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    static ChatRecord chat(String... roleContent) {
        List<Message> m = new ArrayList<>();
        for (int i = 0; i < roleContent.length; i += 2) {
            m.add(new Message(roleContent[i], roleContent[i + 1]));
        }
        return new ChatRecord(m);
    }

    @Test
    void tokenizerEncodesAsComputedByHand() {
        assertArrayEquals(new int[] {23, 4}, tokenizer.encode("user\n"));
        assertArrayEquals(new int[] {5, 14, 14, 8, 14, 15, 5, 11, 15, 4}, tokenizer.encode("assistant\n"));
        assertArrayEquals(new int[] {19, 18, 20}, tokenizer.encode("hi ok")); // "Ġok" has no merge: Ġ then ok
        assertEquals(24, tokenizer.vocabularySize());
        assertEquals(2, tokenizer.specialTokenId("<|im_end|>"));
    }

    @Test
    void idsOnlyEncodingMatchesDjlsEncodings() {
        // The fast path reads only the ids from the native encodings; the reference is DJL's public
        // batchEncode (full Encoding objects) over the shipped byte-level BPE tokenizer.
        String[] texts = {"", " ", "hi", "Add 64 and 49.", "  two  spaces\n\nand lines\t", "caf\u00e9 \u00fcber \u65e5\u672c \ud83d\ude00",
            "<|im_end|> is plain text here", "x".repeat(5000)};
        try (HfTokenizer shipped = HfTokenizer.load(TestContext.examples().resolve("tokenizer/tokenizer.json"))) {
            int[][] fast = shipped.encode(texts);
            int[][] reference = shipped.encodeReference(texts);
            for (int i = 0; i < texts.length; i++) {
                assertArrayEquals(reference[i], fast[i], "text " + i);
            }
            assertEquals(0, fast[0].length, "the empty text has no tokens");
        }
        assertArrayEquals(new int[] {23, 4}, tokenizer.encode(new String[] {"user\n"})[0], "tiny tokenizer, by hand (class javadoc)");
    }

    @Test
    void cachedSystemPromptRendersTheSameIds() {
        // <|im_start|>system\nhi<|im_end|>\n = [1, 14,17,14,15,6,10,4, 19, 2, 4] by hand (class javadoc), then HI_OK.
        int[] expected = new int[11 + HI_OK.length];
        System.arraycopy(new int[] {1, 14, 17, 14, 15, 6, 10, 4, 19, 2, 4}, 0, expected, 0, 11);
        System.arraycopy(HI_OK, 0, expected, 11, HI_OK.length);
        ChatMlTemplate t = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true);
        ChatRecord r = chat("system", "hi", "user", "hi", "assistant", "ok");
        assertArrayEquals(expected, t.render(r).ids(), "first render encodes the prompt");
        assertArrayEquals(expected, t.render(r).ids(), "second render takes the prompt's ids from the cache");
    }

    @Test
    void assistantOnlyMaskSupervisesTheAnswerAndItsImEnd() {
        Document d = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true).render(chat("user", "hi", "assistant", "ok"));
        assertArrayEquals(HI_OK, d.ids());
        boolean[] expected = new boolean[20];
        expected[17] = true; // "ok"
        expected[18] = true; // the <|im_end|> closing the assistant turn: the EOS is supervised
        assertArrayEquals(expected, d.supervised());
        assertEquals(0, d.eosMasked());
    }

    @Test
    void lastAssistantAndAllModes() {
        ChatRecord twoTurns = chat("system", "hi", "user", "hi", "assistant", "ok", "user", "hi", "assistant", "hi");
        Document last = new ChatMlTemplate(tokenizer, LossOn.LAST_ASSISTANT, true).render(twoTurns);
        // system turn 1+7+1+1+1 = 11 tokens, user 1+2+1+1+1 = 6, assistant 1+10+1+1+1 = 14, user 6, assistant 14: 51.
        assertEquals(51, last.length());
        int[] supervisedAt = indexes(last.supervised());
        // the last assistant turn starts at 11+6+14+6 = 37: content at 37+1+10 = 48, <|im_end|> at 49
        assertArrayEquals(new int[] {48, 49}, supervisedAt);
        Document both = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true).render(twoTurns);
        assertArrayEquals(new int[] {28, 29, 48, 49}, indexes(both.supervised()));
        Document all = new ChatMlTemplate(tokenizer, LossOn.ALL, true).render(twoTurns);
        assertEquals(51, indexes(all.supervised()).length);
    }

    @Test
    void maskedEosIsCounted() {
        Document d = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, false)
                .render(chat("user", "hi", "assistant", "ok", "user", "hi", "assistant", "ok"));
        assertEquals(2, d.assistantTurns());
        assertEquals(2, d.eosMasked());
    }

    private static int[] indexes(boolean[] b) {
        return java.util.stream.IntStream.range(0, b.length).filter(i -> b[i]).toArray();
    }

    private static MixStream stream(Path dir, Leftover leftover, int length) throws IOException {
        Path f = dir.resolve("hi_ok.jsonl");
        Files.writeString(f, (HI_OK_JSON + "\n").repeat(5));
        ChatMlTemplate t = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true);
        ChatSource s = ChatSource.open("hi_ok", 1.0, f, t, tokenizer, OnError.FAIL, CacheFiles.OFF);
        return new MixStream(new ChatSource[] {s}, t, 7, length, leftover, 3, 0);
    }

    /** Labels of a 20-token HI_OK document placed at row offset 0: only positions 16 and 17 are supervised. */
    private static int[] labelsOfOneDocument(int take) {
        int[] l = new int[take];
        Arrays.fill(l, PackedBatch.IGNORE);
        if (take > 17) {
            l[16] = 20; // predicts "ok"
        }
        if (take > 18) {
            l[17] = 2; // predicts <|im_end|>
        }
        return l;
    }

    @Test
    void splitContinuesTheDocumentInTheNextRowAsANewSegment(@TempDir Path dir) throws IOException {
        try (MixStream s = stream(dir, Leftover.SPLIT, 32)) {
            PackedBatch b = s.next(2);
            // row 0: doc A (20 tokens) + first 12 tokens of doc B; row 1: last 8 of B, doc C (20), first 4 of D
            int[] ids0 = concat(HI_OK, Arrays.copyOf(HI_OK, 12));
            int[] ids1 = concat(Arrays.copyOfRange(HI_OK, 12, 20), HI_OK, Arrays.copyOf(HI_OK, 4));
            assertArrayEquals(concat(ids0, ids1), b.inputIds());
            int[] pos0 = concat(range(20), range(12));
            int[] pos1 = concat(range(8), range(20), range(4));
            assertArrayEquals(concat(pos0, pos1), b.positionIds());
            int[] doc0 = concat(fill(20, 0), fill(12, 1));
            int[] doc1 = concat(fill(8, 0), fill(20, 1), fill(4, 2));
            assertArrayEquals(concat(doc0, doc1), b.documentIds());
            // B's segment in row 1 holds tokens 12..19: token 17 "ok" and 18 <|im_end|> are predicted at its positions 4 and 5
            int[] seg = new int[8];
            Arrays.fill(seg, PackedBatch.IGNORE);
            seg[4] = 20;
            seg[5] = 2;
            int[] labels = concat(labelsOfOneDocument(20), labelsOfOneDocument(12), seg, labelsOfOneDocument(20), labelsOfOneDocument(4));
            assertArrayEquals(labels, b.labels());
            assertEquals(0.0, s.paddingFraction());
        }
    }

    @Test
    void padReportsThePaddingFraction(@TempDir Path dir) throws IOException {
        try (MixStream s = stream(dir, Leftover.PAD, 32)) {
            PackedBatch b = s.next(3);
            // each row: one 20-token document, then 12 <|pad|> (id 3) with their own document id 1
            int[] row = concat(HI_OK, fill(12, 3));
            assertArrayEquals(concat(row, row, row), b.inputIds());
            int[] docRow = concat(fill(20, 0), fill(12, 1));
            assertArrayEquals(concat(docRow, docRow, docRow), b.documentIds());
            assertEquals(12.0 / 32, s.paddingFraction(), 1e-12);
            assertEquals(3 * 2, b.supervisedTokens());
            // three documents were taken (the one that waited for the next row counted once)
            assertEquals(60, s.progress().get(0).tokens());
            assertEquals(60.0 / 100, s.progress().get(0).epochs(), 1e-12); // epoch = 5 records x 20 tokens
            // TRL's epoch over the whole data: 60 tokens of one pass of 100 (the plan's tokens/epoch)
            assertEquals(0.6, s.epoch().orElseThrow(), 1e-12);
        }
    }

    @Test
    void dropCutsTheLeftoverAndCountsIt(@TempDir Path dir) throws IOException {
        try (MixStream s = stream(dir, Leftover.DROP, 32)) {
            PackedBatch b = s.next(2);
            // row 0: A + first 12 of B (8 dropped); row 1: C + first 12 of D (8 dropped)
            int[] row = concat(HI_OK, Arrays.copyOf(HI_OK, 12));
            assertArrayEquals(concat(row, row), b.inputIds());
            assertEquals(16, s.droppedTokens());
            assertEquals(0, s.paddingTokens());
        }
    }

    static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] p : parts) {
            n += p.length;
        }
        int[] out = new int[n];
        int k = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, k, p.length);
            k += p.length;
        }
        return out;
    }

    static int[] range(int n) {
        return java.util.stream.IntStream.range(0, n).toArray();
    }

    static int[] fill(int n, int v) {
        int[] a = new int[n];
        Arrays.fill(a, v);
        return a;
    }
}
