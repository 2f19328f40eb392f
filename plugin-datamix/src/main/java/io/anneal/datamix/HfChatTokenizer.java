package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.api.data.ChatTokenizer;
import io.anneal.api.data.Message;
import io.anneal.api.extension.ExtensionFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The {@code hf} {@link ChatTokenizer}: a Hugging Face tokenizer folder's {@code tokenizer.json} and
 * chat template (the folder's own, read as transformers reads it; ChatML where it has none), the
 * same tokenizer and renderer the training data uses.
 */
final class HfChatTokenizer implements ChatTokenizer {
    private final HfTokenizer tokenizer;
    private final JinjaChatTemplate template;
    private final String origin;

    private HfChatTokenizer(HfTokenizer tokenizer, JinjaChatTemplate template, String origin) {
        this.tokenizer = tokenizer;
        this.template = template;
        this.origin = origin;
    }

    /** {@code anneal.chat-tokenizer.hf { folder = ... }}. */
    static ExtensionFactory<ChatTokenizer> factory() {
        return ExtensionFactory.of(ChatTokenizer.class, "hf",
                "a Hugging Face tokenizer folder and its chat template, for generation",
                (config, context) -> open(context.resolvePath(config, "folder")));
    }

    static HfChatTokenizer open(Path folder) {
        Path file = folder.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            throw new InputException(folder + ": no tokenizer.json (generation needs the model folder's tokenizer files,"
                    + " which Anneal writes into every model folder)");
        }
        HfTokenizer tokenizer = HfTokenizer.load(file);
        try {
            TokenizerConfig config = TokenizerConfig.read(file);
            String source = config.chatTemplate() != null ? config.chatTemplate()
                    : ModelFolderFiles.chatMl(config.bosToken() != null);
            String origin = config.chatTemplate() != null ? config.templateOrigin() : "ChatML (the folder has no chat template)";
            JinjaChatTemplate template = new JinjaChatTemplate(source, origin, config.specialTokens(), tokenizer,
                    LossOn.ASSISTANT, true);
            return new HfChatTokenizer(tokenizer, template, origin);
        } catch (RuntimeException e) {
            tokenizer.close();
            throw e;
        }
    }

    @Override
    public long[] encodePrompt(List<Message> messages) {
        List<Map<String, Object>> maps = new ArrayList<>();
        for (Message m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            maps.add(map);
        }
        String text;
        try {
            text = template.render(maps, null, true).text();
        } catch (JinjaChatTemplate.RenderException e) {
            throw new InputException(origin + ": the chat template refused the conversation: " + e.getMessage(), e);
        }
        int[] ids = tokenizer.encode(text);
        long[] out = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = ids[i];
        }
        return out;
    }

    @Override
    public String decode(long[] ids) {
        return tokenizer.decodeWithoutSpecialTokens(ids);
    }

    @Override
    public Set<Long> endOfTurn() {
        Set<Long> ids = new LinkedHashSet<>();
        for (int id : template.endIds()) {
            ids.add((long) id);
        }
        return ids;
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
