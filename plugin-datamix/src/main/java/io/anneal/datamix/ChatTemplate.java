package io.anneal.datamix;

import io.anneal.api.data.ChatRecord;
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

    default Document render(ChatRecord record) {
        return renderAll(List.of(record))[0];
    }
}
