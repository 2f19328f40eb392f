package io.anneal.datamix;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The files a model folder gets from the data ({@code modelFolderFiles()}): with {@code template = chatml}
 * the chat_template is the Jinja ChatML text that Python's jinja2 (as transformers sets it up, fixtures by
 * tools/fixtures/make_chatml_template_fixtures.py) renders to exactly what ChatMlTemplate renders, BOS
 * included; with {@code template = auto} it is the tokenizer's own template.
 */
class ModelFolderFilesTest {
    private static final Path TEMPLATES = JinjaChatTemplateTest.resource("/chat-templates");
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    @SuppressWarnings("unchecked")
    void chatMlTemplateRenderedByJinja2EqualsWhatTrainingRenders(@TempDir Path dir) throws IOException {
        Map<String, Object> fixtures = JSON.readValue(TEMPLATES.resolve("chatml-fixtures.json").toFile(), Map.class);
        Path withBos = copyTokenizer(dir.resolve("bos"), true);
        Path noConfig = dir.resolve("plain/tokenizer.json");
        Files.createDirectories(noConfig.getParent());
        Files.copy(TEMPLATES.resolve("tokenizer/tokenizer.json"), noConfig);
        int checked = 0;
        for (Map<String, Object> c : (List<Map<String, Object>>) fixtures.get("cases")) {
            boolean bos = (Boolean) c.get("bos");
            try (HfTokenizer tokenizer = HfTokenizer.load(bos ? withBos : noConfig)) {
                MixTrainingData data = mix(tokenizer, false);
                Map<String, Object> config = config(data.modelFolderFiles());
                assertEquals(c.get("template"), config.get("chat_template"));
                List<Message> messages = ((List<Map<String, String>>) c.get("messages")).stream()
                        .map(m -> new Message(m.get("role"), m.get("content"))).toList();
                Document doc = data.template().render(new ChatRecord(messages));
                assertEquals(c.get("text"), tokenizer.decode(doc.ids()), "bos " + bos + ": " + messages);
                if (bos) {
                    assertEquals(fixtures.get("bos_token"), config.get("bos_token"));
                } else {
                    assertNull(config.get("bos_token"));
                    assertEquals("<|im_end|>", config.get("eos_token"));
                    assertEquals("<|pad|>", config.get("pad_token"));
                    assertEquals("PreTrainedTokenizerFast", config.get("tokenizer_class"));
                }
                checked++;
            }
        }
        assertEquals(6, checked);
    }

    @Test
    void autoCarriesTheTokenizersOwnTemplateAndItsFiles(@TempDir Path dir) throws IOException {
        Path tokenizerJson = copyTokenizer(dir, false);
        String template = Files.readString(TEMPLATES.resolve("falcon-h1-instruct.jinja"));
        Files.writeString(dir.resolve("chat_template.jinja"), template);
        Files.writeString(dir.resolve("special_tokens_map.json"), "{\"eos_token\": \"<|end_of_text|>\"}");
        try (HfTokenizer tokenizer = HfTokenizer.load(tokenizerJson)) {
            Map<String, byte[]> files = mix(tokenizer, true).modelFolderFiles();
            assertEquals(List.of("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"),
                    List.copyOf(files.keySet()));
            assertTrue(java.util.Arrays.equals(Files.readAllBytes(tokenizerJson), files.get("tokenizer.json")));
            assertEquals(template, config(files).get("chat_template"));
            assertEquals(template, new String(files.get("chat_template.jinja"), StandardCharsets.UTF_8));
            assertEquals("<|begin_of_text|>", config(files).get("bos_token"));
            // the preference data renders ChatML without a BOS; the folder's chat_template.jinja says so too
            Map<String, byte[]> prefs = new PreferenceTrainingData(tokenizer, List.of(), 0, s -> { }).modelFolderFiles();
            assertEquals(ModelFolderFiles.chatMl(false), new String(prefs.get("chat_template.jinja"), StandardCharsets.UTF_8));
            assertFalse(((String) config(prefs).get("chat_template")).contains("bos_token"));
        }
    }

    private static MixTrainingData mix(HfTokenizer tokenizer, boolean jinja) {
        return new MixTrainingData(tokenizer, List.of(), LossOn.ASSISTANT, true, 0, 0, Leftover.SPLIT, CacheFiles.OFF,
                s -> { }, jinja, TokenizerConfig.read(tokenizer.file()));
    }

    /** The test tokenizer and its tokenizer_config.json in {@code dir}, with add_bos_token as given. */
    private static Path copyTokenizer(Path dir, boolean addBos) throws IOException {
        Files.createDirectories(dir);
        Files.copy(TEMPLATES.resolve("tokenizer/tokenizer.json"), dir.resolve("tokenizer.json"));
        String config = Files.readString(TEMPLATES.resolve("tokenizer/tokenizer_config.json"));
        Files.writeString(dir.resolve("tokenizer_config.json"), config.replace("\"add_bos_token\": false", "\"add_bos_token\": " + addBos));
        return dir.resolve("tokenizer.json");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> config(Map<String, byte[]> files) throws IOException {
        return JSON.readValue(files.get("tokenizer_config.json"), Map.class);
    }
}
