package io.anneal.datamix;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.InputException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * What a Hugging Face tokenizer folder says beside its {@code tokenizer.json}: the special tokens and
 * {@code add_bos_token} of {@code tokenizer_config.json}, and the chat template, read as transformers
 * reads it: {@code chat_template.jinja} first, else {@code tokenizer_config.json}'s
 * {@code chat_template} (a string, or a list of named templates, of which "default" is taken).
 *
 * @param specialTokens  bos_token, eos_token, unk_token, pad_token as the template sees them (those set)
 * @param addBosToken    tokenizer_config.json's add_bos_token
 * @param chatTemplate   the template's text, or null when the folder has none
 * @param templateOrigin where the template came from (a file, and the key for tokenizer_config.json)
 */
record TokenizerConfig(Map<String, String> specialTokens, boolean addBosToken, String chatTemplate, String templateOrigin) {
    static final String CONFIG = "tokenizer_config.json";
    static final String TEMPLATE_FILE = "chat_template.jinja";
    private static final List<String> TOKEN_KEYS = List.of("bos_token", "eos_token", "unk_token", "pad_token");
    private static final Pattern STARTS_WITH_BOS = Pattern.compile("^\\s*(\\{#.*?#\\}\\s*)*\\{\\{-?\\s*bos_token\\s*-?\\}\\}", Pattern.DOTALL);

    /** The folder of {@code tokenizerJson}; a folder without tokenizer_config.json has no special tokens. */
    static TokenizerConfig read(Path tokenizerJson) {
        Path dir = tokenizerJson.toAbsolutePath().getParent();
        Path configFile = dir.resolve(CONFIG);
        Map<String, String> tokens = new LinkedHashMap<>();
        boolean addBos = false;
        String template = null;
        String origin = null;
        if (Files.isRegularFile(configFile)) {
            Map<?, ?> json;
            try {
                json = new ObjectMapper().readValue(configFile.toFile(), Map.class);
            } catch (IOException e) {
                throw new InputException(configFile + ": expected a JSON object (tokenizer_config.json), found: " + e.getMessage(), e);
            }
            for (String key : TOKEN_KEYS) {
                Object v = json.get(key);
                if (v instanceof Map<?, ?> added) { // an AddedToken: {"content": "<s>", ...}
                    v = added.get("content");
                }
                if (v instanceof String s) {
                    tokens.put(key, s);
                } else if (v != null) {
                    throw new InputException(configFile + ": expected \"" + key + "\" to be a string or {\"content\": ...}, found " + v);
                }
            }
            addBos = Boolean.TRUE.equals(json.get("add_bos_token"));
            Object t = json.get("chat_template");
            if (t instanceof String s) {
                template = s;
                origin = configFile + " (\"chat_template\")";
            } else if (t instanceof List<?> named) {
                for (Object o : named) {
                    if (o instanceof Map<?, ?> m && "default".equals(m.get("name")) && m.get("template") instanceof String s) {
                        template = s;
                        origin = configFile + " (\"chat_template\", the one named \"default\")";
                    }
                }
                if (template == null) {
                    throw new InputException(configFile + ": expected \"chat_template\" to name a template \"default\" "
                            + "([{\"name\": \"default\", \"template\": \"...\"}, ...]), found none");
                }
            } else if (t != null) {
                throw new InputException(configFile + ": expected \"chat_template\" to be a string or a list of "
                        + "{\"name\", \"template\"}, found " + t.getClass().getSimpleName());
            }
        }
        Path templateFile = dir.resolve(TEMPLATE_FILE);
        if (Files.isRegularFile(templateFile)) {
            try {
                template = Files.readString(templateFile, StandardCharsets.UTF_8);
                origin = templateFile.toString();
            } catch (IOException e) {
                throw new InputException(templateFile + ": cannot read the chat template: " + e.getMessage(), e);
            }
        }
        return new TokenizerConfig(Map.copyOf(tokens), addBos, template, origin);
    }

    /** A BOS token goes first: the config says add_bos_token, or the chat template starts with {{ bos_token }}. */
    String bosToken() {
        boolean wanted = addBosToken || (chatTemplate != null && STARTS_WITH_BOS.matcher(chatTemplate).lookingAt());
        return wanted ? specialTokens.get("bos_token") : null;
    }
}
