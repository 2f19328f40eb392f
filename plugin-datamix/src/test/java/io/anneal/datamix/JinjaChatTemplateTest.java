package io.anneal.datamix;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.InputException;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Differential tests of {@code template = auto} against fixtures from Python's jinja2 set up as
 * transformers sets it up (tools/fixtures/make_chat_template_fixtures.py): the Falcon-H1 instruct
 * template, the Tulu 3 template (both masked by rendering prefixes) and a template with a tool role
 * and {% generation %} blocks. Rendered text, assistant spans (code points) and the per-token masks
 * derived from them must match; refusals (raise_exception) must carry the template's message.
 */
class JinjaChatTemplateTest {
    private static final Path DIR = resource("/chat-templates");
    private static HfTokenizer tokenizer;
    private static Map<String, Object> fixtures;

    @BeforeAll
    @SuppressWarnings("unchecked")
    static void load() throws IOException {
        tokenizer = HfTokenizer.load(DIR.resolve("tokenizer/tokenizer.json"));
        fixtures = new ObjectMapper().readValue(DIR.resolve("fixtures.json").toFile(), Map.class);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    static Path resource(String name) {
        try {
            return Path.of(JinjaChatTemplateTest.class.getResource(name).toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> list(String key) {
        return (List<Map<String, Object>>) fixtures.get(key);
    }

    @SuppressWarnings("unchecked")
    private static JinjaChatTemplate template(String file, LossOn lossOn, boolean superviseEos) throws IOException {
        return new JinjaChatTemplate(Files.readString(DIR.resolve(file)), file, (Map<String, String>) fixtures.get("special_tokens"),
                tokenizer, lossOn, superviseEos);
    }

    @Test
    @SuppressWarnings("unchecked")
    void rendersTextSpansAndMasksAsJinja2WithTransformersSettings() throws Exception {
        List<Map<String, Object>> cases = list("cases");
        assertTrue(cases.size() >= 8, "fixtures for the Falcon-H1, Tulu and tool-role templates");
        for (Map<String, Object> c : cases) {
            String label = c.get("template") + "/" + c.get("conversation");
            JinjaChatTemplate t = template((String) c.get("template"), LossOn.ASSISTANT, true);
            List<Map<String, Object>> messages = (List<Map<String, Object>>) c.get("messages");
            JinjaChatTemplate.Rendered r = t.renderConversation(messages, (List<?>) c.get("tools"));
            assertEquals(c.get("text"), r.text(), label);
            List<List<Integer>> expected = (List<List<Integer>>) c.get("assistant_spans");
            List<List<Integer>> got = new ArrayList<>();
            r.spans().forEach(s -> got.add(List.of(s[0], s[1])));
            assertEquals(expected, got, label + " assistant spans (" + c.get("span_method") + ")");

            // The per-token mask from the fixture's spans equals the one from the record path.
            List<int[]> fixtureSpans = new ArrayList<>();
            expected.forEach(s -> fixtureSpans.add(new int[] {s.get(0), s.get(1)}));
            long assistants = messages.stream().filter(m -> "assistant".equals(m.get("role"))).count();
            Document fromFixture = t.mask(new JinjaChatTemplate.Rendered((String) c.get("text"), fixtureSpans), (int) assistants);
            assertArrayEquals(tokenizer.encode((String) c.get("text")), fromFixture.ids(), label + " ids");
            if (c.get("tools") == null) {
                List<Message> turns = new ArrayList<>();
                messages.forEach(m -> turns.add(new Message((String) m.get("role"), (String) m.get("content"))));
                Document d = t.render(new ChatRecord(turns));
                assertNull(d.problem(), label);
                assertArrayEquals(fromFixture.ids(), d.ids(), label + " ids");
                assertArrayEquals(fromFixture.supervised(), d.supervised(), label + " mask");
                assertEquals(assistants, d.assistantTurns());
                assertEquals(0, d.eosMasked(), label + ": every assistant turn ends with a supervised EOS");
            }
            // Supervised tokens decode to exactly the assistant spans' characters.
            assertEquals(spanText((String) c.get("text"), fixtureSpans), supervisedText((String) c.get("text"), fromFixture), label);
        }
    }

    private static String spanText(String text, List<int[]> spans) {
        StringBuilder b = new StringBuilder();
        for (int[] s : spans) {
            b.append(text, text.offsetByCodePoints(0, s[0]), text.offsetByCodePoints(0, s[1]));
        }
        return b.toString();
    }

    private static String supervisedText(String text, Document d) {
        HfTokenizer.Encoded e = tokenizer.encodeWithOffsets(text);
        StringBuilder b = new StringBuilder();
        int done = 0; // byte-level tokens of one character share its span
        for (int j = 0; j < d.length(); j++) {
            if (d.supervised()[j] && e.ends()[j] > done) {
                b.append(text, text.offsetByCodePoints(0, Math.max(done, e.starts()[j])), text.offsetByCodePoints(0, e.ends()[j]));
            }
            done = Math.max(done, e.ends()[j]);
        }
        return b.toString();
    }

    @Test
    @SuppressWarnings("unchecked")
    void raiseExceptionRefusesTheRecordWithTheTemplatesMessage() throws Exception {
        List<Map<String, Object>> failures = list("failures");
        assertEquals(2, failures.size());
        for (Map<String, Object> f : failures) {
            JinjaChatTemplate t = template((String) f.get("template"), LossOn.ASSISTANT, true);
            List<Message> turns = new ArrayList<>();
            ((List<Map<String, Object>>) f.get("messages")).forEach(m -> turns.add(new Message((String) m.get("role"), (String) m.get("content"))));
            Document d = t.render(new ChatRecord(turns));
            assertEquals("the chat template " + f.get("template") + " to render the record, found raise_exception('"
                    + f.get("error") + "')", d.problem());
        }
    }

    @Test
    void lossOnAndSuperviseEosApplyToTheSpans() throws Exception {
        ChatRecord two = new ChatRecord(List.of(new Message("user", "a"), new Message("assistant", "b"),
                new Message("user", "c"), new Message("assistant", "d")));
        int imEnd = tokenizer.specialTokenId("<|im_end|>");
        Document all = template("tool-role.jinja", LossOn.ASSISTANT, true).render(two);
        Document last = template("tool-role.jinja", LossOn.LAST_ASSISTANT, true).render(two);
        Document noEos = template("tool-role.jinja", LossOn.ASSISTANT, false).render(two);
        Document everything = template("tool-role.jinja", LossOn.ALL, true).render(two);
        assertEquals(4, count(all), "b <|im_end|> d <|im_end|>");
        assertEquals(2, count(last));
        assertEquals(2, count(noEos));
        assertEquals(2, noEos.eosMasked(), "both turns' EOS masked, and counted");
        for (int j = 0; j < noEos.length(); j++) {
            assertFalse(noEos.supervised()[j] && noEos.ids()[j] == imEnd);
        }
        assertEquals(everything.length(), count(everything));
    }

    private static int count(Document d) {
        int n = 0;
        for (boolean s : d.supervised()) {
            n += s ? 1 : 0;
        }
        return n;
    }

    @Test
    void prefixRendersThatAreNotPrefixesRefuseTheRecord() throws Exception {
        // A template that numbers turns from the end: adding a turn rewrites the text before it.
        JinjaChatTemplate t = new JinjaChatTemplate("{% for m in messages %}{{ messages|length - loop.index0 }}:{{ m.content }}\n{% endfor %}",
                "countdown.jinja", Map.of(), tokenizer, LossOn.ASSISTANT, true);
        Document d = t.render(new ChatRecord(List.of(new Message("user", "a"), new Message("assistant", "b"), new Message("user", "c"))));
        assertTrue(d.problem().startsWith("the span of assistant message 1 to be found by rendering prefixes"), d.problem());
        assertTrue(d.problem().contains("countdown.jinja"), d.problem());
    }

    @Test
    void recordsFailUnderOnErrorWithFileAndLine(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("chat.jsonl");
        Files.writeString(data, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"ok\"}]}\n"
                + "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", \"content\": \"!\"}]}\n");
        JinjaChatTemplate t = template("tool-role.jinja", LossOn.ASSISTANT, true);
        InputException e = assertThrows(InputException.class, () -> ChatSource.open("chat", 1, data, t, tokenizer, OnError.FAIL, CacheFiles.OFF));
        assertTrue(e.getMessage().startsWith(data + ":2: expected the chat template tool-role.jinja to render the record, "
                + "found raise_exception('A conversation needs a user turn')"), e.getMessage());
        ChatSource s = ChatSource.open("chat", 1, data, t, tokenizer, OnError.SKIP, CacheFiles.OFF);
        assertEquals(1, s.records());
        assertTrue(s.loadReport().contains("skipped 1 bad record"), s.loadReport());
    }

    @Test
    void tokenizerFolderTemplateAndBos(@TempDir Path dir) throws IOException {
        Path tok = dir.resolve("tokenizer.json");
        Files.copy(DIR.resolve("tokenizer/tokenizer.json"), tok);
        assertNull(TokenizerConfig.read(tok).chatTemplate(), "no tokenizer_config.json: no template, no special tokens");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": {\"content\": \"<|begin_of_text|>\"}, "
                + "\"eos_token\": \"<|end_of_text|>\", \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, "
                + "{\"name\": \"default\", \"template\": \"{{- bos_token }}D\"}]}");
        TokenizerConfig c = TokenizerConfig.read(tok);
        assertEquals("{{- bos_token }}D", c.chatTemplate());
        assertEquals("<|begin_of_text|>", c.specialTokens().get("bos_token"));
        assertEquals("<|begin_of_text|>", c.bosToken(), "the template starts with {{ bos_token }}");
        Files.writeString(dir.resolve(TokenizerConfig.TEMPLATE_FILE), "{{ messages[0].content }}");
        assertEquals("{{ messages[0].content }}", TokenizerConfig.read(tok).chatTemplate(), "chat_template.jinja wins");
        assertNull(TokenizerConfig.read(tok).bosToken());

        // ChatML fast path with the BOS: first token, unsupervised.
        ChatMlTemplate chatml = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true, "<|begin_of_text|>");
        Document d = chatml.render(new ChatRecord(List.of(new Message("user", "hi"), new Message("assistant", "ok"))));
        assertEquals(tokenizer.specialTokenId("<|begin_of_text|>"), d.ids()[0]);
        assertFalse(d.supervised()[0]);
        // ... and rendering as the Falcon-H1 template does (it starts with {{bos_token}}), token for token.
        Document falcon = template("falcon-h1-instruct.jinja", LossOn.ASSISTANT, true)
                .render(new ChatRecord(List.of(new Message("user", "hi"), new Message("assistant", "ok"))));
        assertArrayEquals(falcon.ids(), d.ids());

        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}]}");
        Files.delete(dir.resolve(TokenizerConfig.TEMPLATE_FILE));
        InputException e = assertThrows(InputException.class, () -> TokenizerConfig.read(tok));
        assertTrue(e.getMessage().contains("tokenizer_config.json: expected \"chat_template\" to name a template \"default\""), e.getMessage());
    }
}
