package io.anneal.datamix;

import io.anneal.toolkit.chat.ChatRecord;
import java.util.List;

/**
 * Renders chat records into token ids and loss masks: the ChatML fast path ({@link ChatMlTemplate},
 * {@code template = chatml}) or a tokenizer's own Jinja template ({@link JinjaChatTemplate},
 * {@code template = auto}). A record a template cannot render comes back as a document with a
 * {@link Document#problem()}, which the reader handles under its {@code on-error} policy.
 */
interface ChatTemplate {

    LossOn lossOn();

    /** A description that keys caches: two templates with the same key render the same ids and masks. */
    String cacheKey();

    /** Work that can be timed apart from assembling (the tokeniser calls); may return null. */
    int[][] encodeContents(List<ChatRecord> records);

    /** The documents of the records, given what {@link #encodeContents} returned for them. */
    Document[] assembleAll(List<ChatRecord> records, int[][] encoded);

    default Document[] renderAll(List<ChatRecord> records) {
        return assembleAll(records, encodeContents(records));
    }

    /**
     * What is wrong with messages whose content holds one of the tokenizer's control strings (its added
     * tokens: {@code <|im_end|>}, {@code <|im_start|>}, {@code <|endoftext|>}, ...), phrased for
     * "expected ...", or null when none does. Such a record is refused (or skipped and counted, under
     * on-error = skip) instead of being tokenised into real control tokens.
     */
    static String controlStringProblem(HfTokenizer tokenizer, List<io.anneal.api.data.Message> messages) {
        for (int m = 0; m < messages.size(); m++) {
            String content = messages.get(m).content();
            String token = tokenizer.specialTokenIn(content);
            if (token != null) {
                return "message " + (m + 1) + " (" + messages.get(m).role() + ") to hold plain text, found the tokenizer's "
                        + "control string '" + token + "' at character " + (content.codePointCount(0, content.indexOf(token)) + 1)
                        + " of its content (it would be read as the control token itself, not as text)";
            }
        }
        return null;
    }

    default Document render(ChatRecord record) {
        return renderAll(List.of(record))[0];
    }
}
