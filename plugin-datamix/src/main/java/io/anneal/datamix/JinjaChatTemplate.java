package io.anneal.datamix;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * A tokenizer's own Jinja chat template ({@code template = auto}), rendered with Jinjava set up as
 * transformers sets up jinja2 ({@link PythonJinja}): trim_blocks and lstrip_blocks, the special
 * tokens of tokenizer_config.json, {@code add_generation_prompt} false, {@code messages} as
 * role/content maps. The rendered text is tokenised without added special tokens (the template
 * writes its own), as {@code apply_chat_template} does.
 *
 * <p>Loss masks come from assistant spans in characters, mapped to tokens through the tokenizer's
 * offsets (a token is supervised when it overlaps a span, as transformers'
 * {@code return_assistant_tokens_mask} takes the tokens from the span's first to its last character):
 * <ul>
 *   <li>a template with {@code {% generation %}} blocks: the spans those blocks render;
 *   <li>otherwise by rendering prefixes: assistant turn k spans from the end of the render of
 *       messages[:k] with the generation prompt to the end of the render of messages[:k+1]; both
 *       must be prefixes of the whole render, or the record is refused (its span cannot be found).
 * </ul>
 * Positions are Unicode code points, as the tokenizer's offsets and Python count them.
 */
final class JinjaChatTemplate implements ChatTemplate {
    private static final Pattern GENERATION_TAG = Pattern.compile("\\{%[-+]?\\s*generation\\s*[-+]?%\\}");

    private final Jinjava jinjava = PythonJinja.environment();
    private final String source;
    private final String origin;
    private final Map<String, String> specialTokens;
    private final boolean generationBlocks;
    private final HfTokenizer tokenizer;
    private final LossOn lossOn;
    private final boolean superviseEos;
    private final Set<Integer> endIds = new HashSet<>();
    private final String cacheKey;

    JinjaChatTemplate(String source, String origin, Map<String, String> specialTokens, HfTokenizer tokenizer, LossOn lossOn,
                      boolean superviseEos) {
        // jinja2 drops one newline at the end of a template's source (keep_trailing_newline off)
        this.source = source.endsWith("\r\n") ? source.substring(0, source.length() - 2)
                : source.endsWith("\n") ? source.substring(0, source.length() - 1) : source;
        this.origin = origin;
        this.specialTokens = new TreeMap<>(specialTokens);
        this.generationBlocks = GENERATION_TAG.matcher(source).find();
        this.tokenizer = tokenizer;
        this.lossOn = lossOn;
        this.superviseEos = superviseEos;
        // The tokens that end an assistant turn: the EOS the model must learn to emit.
        for (String end : new String[] {specialTokens.get("eos_token"), ChatMlTemplate.IM_END}) {
            if (end != null && tokenizer.hasSpecialToken(end)) {
                endIds.add(tokenizer.specialTokenId(end));
            }
        }
        this.cacheKey = "jinja/plain/" + sha256(source + "\u0000" + this.specialTokens) + "/" + lossOn.configName() + "/eos=" + superviseEos;
    }

    /** The ids that end an assistant turn: the EOS and {@code <|im_end|>}, those the tokenizer defines. */
    Set<Integer> endIds() {
        return Set.copyOf(endIds);
    }

    /** Text and assistant spans ([start, end) in code points) of one conversation. */
    record Rendered(String text, List<int[]> spans) {}

    /** A template that refused a conversation (raise_exception) or failed to render it. */
    static final class RenderException extends Exception {
        private static final long serialVersionUID = 1L;

        RenderException(String message) {
            super(message);
        }
    }

    @Override
    public LossOn lossOn() {
        return lossOn;
    }

    @Override
    public String cacheKey() {
        return cacheKey;
    }

    String origin() {
        return origin;
    }

    @Override
    public int[][] encodeContents(List<ChatRecord> records) {
        return null; // the whole conversation is rendered, then tokenised, in assembleAll
    }

    @Override
    public Document[] assembleAll(List<ChatRecord> records, int[][] encoded) {
        Document[] out = new Document[records.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = document(records.get(i).messages());
        }
        return out;
    }

    private Document document(List<Message> messages) {
        String control = ChatTemplate.controlStringProblem(tokenizer, messages);
        if (control != null) {
            return Document.failed(control);
        }
        List<Map<String, Object>> maps = new ArrayList<>(messages.size());
        int assistantTurns = 0;
        for (Message m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            maps.add(map);
            if (m.isAssistant()) {
                assistantTurns++;
            }
        }
        Rendered r;
        try {
            r = renderConversation(maps, null);
        } catch (RenderException e) {
            return Document.failed(e.getMessage());
        }
        return mask(r, assistantTurns);
    }

    /** The conversation's text and assistant spans (by generation blocks or by prefixes). */
    Rendered renderConversation(List<Map<String, Object>> messages, List<?> tools) throws RenderException {
        Rendered whole = render(messages, tools, false);
        if (generationBlocks) {
            return whole;
        }
        List<int[]> spans = new ArrayList<>();
        int wholeLength = whole.text().codePointCount(0, whole.text().length());
        for (int k = 0; k < messages.size(); k++) {
            if (!Message.ASSISTANT.equals(messages.get(k).get("role"))) {
                continue;
            }
            String prompt = render(messages.subList(0, k), tools, true).text();
            String upto = render(messages.subList(0, k + 1), tools, false).text();
            if (!whole.text().startsWith(prompt) || !whole.text().startsWith(upto) || upto.length() < prompt.length()) {
                throw new RenderException("the span of assistant message " + k + " to be found by rendering prefixes "
                        + "(messages[:" + k + "] with the generation prompt, then messages[:" + (k + 1) + "], each a prefix of "
                        + "the whole conversation's text), found renders that are not prefixes (the template "
                        + origin + " changes earlier text as turns are added; give it {% generation %} blocks)");
            }
            int start = prompt.codePointCount(0, prompt.length());
            int end = upto.codePointCount(0, upto.length());
            spans.add(new int[] {start, Math.min(end, wholeLength)});
        }
        return new Rendered(whole.text(), spans);
    }

    /** One render of the template: text without the generation markers, and the spans they marked. */
    Rendered render(List<Map<String, Object>> messages, List<?> tools, boolean addGenerationPrompt) throws RenderException {
        for (Map<String, Object> m : messages) {
            if (m.get("content") instanceof String s && (s.indexOf(PythonJinja.GENERATION_START) >= 0
                    || s.indexOf(PythonJinja.GENERATION_END) >= 0)) {
                throw new RenderException("message text without the noncharacters U+FDD0/U+FDD1 (they mark "
                        + "{% generation %} blocks), found one in a " + m.get("role") + " message");
            }
        }
        Map<String, Object> bindings = new HashMap<>(specialTokens);
        bindings.put("messages", messages);
        bindings.put("tools", tools);
        bindings.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result;
        PythonJinja.RAISED.remove();
        try {
            result = PythonJinja.withPluginLoader(() -> jinjava.renderForResult(source, bindings));
        } catch (RuntimeException e) {
            throw new RenderException(failure(e.getMessage()));
        }
        // raise_exception(message): Jinjava reports it only as a generic error, so the message is kept aside
        String raised = PythonJinja.RAISED.get();
        PythonJinja.RAISED.remove();
        if (raised != null) {
            throw new RenderException(failure("raise_exception('" + raised + "')"));
        }
        for (TemplateError e : result.getErrors()) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new RenderException(failure(e.getMessage() + (e.getLineno() > 0 ? " (template line " + e.getLineno() + ")" : "")));
            }
        }
        String marked = result.getOutput();
        StringBuilder text = new StringBuilder(marked.length());
        List<int[]> spans = new ArrayList<>();
        int codePoints = 0;
        int start = -1;
        for (int i = 0; i < marked.length(); ) {
            int c = marked.codePointAt(i);
            i += Character.charCount(c);
            if (c == PythonJinja.GENERATION_START) {
                start = codePoints;
            } else if (c == PythonJinja.GENERATION_END) {
                spans.add(new int[] {start, codePoints});
            } else {
                text.appendCodePoint(c);
                codePoints++;
            }
        }
        return new Rendered(text.toString(), spans);
    }

    private String failure(String what) {
        return "the chat template " + origin + " to render the record, found " + what;
    }

    /** Ids of the text and the loss mask of its assistant spans under loss-on and supervise-eos. */
    Document mask(Rendered r, int assistantTurns) {
        HfTokenizer.Encoded enc = tokenizer.encodeWithOffsets(r.text());
        int[] ids = enc.ids();
        boolean[] supervised = new boolean[ids.length];
        List<int[]> spans = r.spans();
        int eosMasked = 0;
        for (int s = 0; s < spans.size(); s++) {
            boolean answer = lossOn == LossOn.ALL || lossOn == LossOn.ASSISTANT || s == spans.size() - 1;
            int[] span = spans.get(s);
            boolean endSupervised = false;
            for (int j = 0; j < ids.length; j++) {
                int from = enc.starts()[j];
                int to = Math.max(enc.ends()[j], from + 1);
                if (from < span[1] && to > span[0] && answer) {
                    boolean end = endIds.contains(ids[j]);
                    supervised[j] = !end || superviseEos;
                    endSupervised |= end && superviseEos;
                }
            }
            if (answer && !endSupervised) {
                eosMasked++;
            }
        }
        if (lossOn == LossOn.ALL) {
            java.util.Arrays.fill(supervised, true);
        }
        return new Document(ids, supervised, assistantTurns, eosMasked);
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JVM", e);
        }
    }
}
