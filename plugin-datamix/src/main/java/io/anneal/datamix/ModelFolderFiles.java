package io.anneal.datamix;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.InputException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The tokenizer files a trained model's folder carries ({@code TrainingData.modelFolderFiles()}), so that
 * transformers' {@code AutoTokenizer.from_pretrained} loads it and {@code apply_chat_template} renders
 * what training rendered: the tokenizer.json, its tokenizer_config.json with {@code chat_template} set
 * to the template training used, and special_tokens_map.json / chat_template.jinja where the tokenizer's
 * folder has them (chat_template.jinja wins over the config in transformers, so it holds the same template).
 */
final class ModelFolderFiles {
    /**
     * {@link ChatMlTemplate}'s rendering as a Jinja template (checked against Python's jinja2 by
     * tools/fixtures/make_chatml_template_fixtures.py); add_generation_prompt opens an assistant turn.
     */
    static final String CHATML_JINJA = "{% for message in messages %}"
            + "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
            + "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    private ModelFolderFiles() {
    }

    /** ChatML as {@link ChatMlTemplate} renders it, with {@code {{ bos_token }}} first when it puts a BOS first. */
    static String chatMl(boolean bos) {
        return (bos ? "{{ bos_token }}" : "") + CHATML_JINJA;
    }

    /** The files for a model trained on data tokenised by {@code tokenizer} and rendered by {@code chatTemplate}. */
    static Map<String, byte[]> of(HfTokenizer tokenizer, String chatTemplate) {
        Path dir = tokenizer.file().toAbsolutePath().getParent();
        Map<String, byte[]> files = new LinkedHashMap<>();
        try {
            files.put("tokenizer.json", Files.readAllBytes(tokenizer.file()));
            Path configFile = dir.resolve(TokenizerConfig.CONFIG);
            Map<String, Object> config = new LinkedHashMap<>();
            ObjectMapper json = new ObjectMapper();
            if (Files.isRegularFile(configFile)) {
                @SuppressWarnings("unchecked")
                Map<String, Object> read = json.readValue(configFile.toFile(), LinkedHashMap.class);
                config.putAll(read);
            } else {
                // no BOS: ChatML without a tokenizer_config.json puts none first (ChatMlTemplate)
                config.put("bos_token", null);
                config.put("eos_token", ChatMlTemplate.IM_END);
                config.put("pad_token", tokenizer.hasSpecialToken("<|pad|>") ? "<|pad|>" : "<|endoftext|>");
                config.put("tokenizer_class", "PreTrainedTokenizerFast");
            }
            config.put("chat_template", chatTemplate);
            files.put(TokenizerConfig.CONFIG, json.writerWithDefaultPrettyPrinter().writeValueAsBytes(config));
            if (Files.isRegularFile(dir.resolve(TokenizerConfig.TEMPLATE_FILE))) {
                files.put(TokenizerConfig.TEMPLATE_FILE, chatTemplate.getBytes(StandardCharsets.UTF_8));
            }
            Path specialTokens = dir.resolve("special_tokens_map.json");
            if (Files.isRegularFile(specialTokens)) {
                files.put("special_tokens_map.json", Files.readAllBytes(specialTokens));
            }
        } catch (IOException e) {
            throw new InputException(dir + ": cannot read the tokenizer's files for the model folder: " + e.getMessage(), e);
        }
        return files;
    }
}
