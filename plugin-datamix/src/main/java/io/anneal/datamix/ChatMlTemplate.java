package io.anneal.datamix;

import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import java.util.List;

/**
 * The ChatML template (the one of Qwen and of Falcon-H1's tokenizer): each turn is
 * {@code <|im_start|>role\ncontent<|im_end|>\n}. Rendering works on token ids, segment by segment,
 * so the loss mask is exact: the role header and the newline after {@code <|im_end|>} are never
 * supervised; an assistant turn's content and the {@code <|im_end|>} that ends it are (the EOS the
 * model must learn to emit, or it never stops).
 */
final class ChatMlTemplate implements ChatTemplate {
    static final String IM_START = "<|im_start|>";
    static final String IM_END = "<|im_end|>";

    private final HfTokenizer tokenizer;
    private final LossOn lossOn;
    private final boolean superviseEos;
    private final int imStart;
    private final int imEnd;
    private final int[] newline;
    private final int[] systemHeader;
    private final int[] userHeader;
    private final int[] assistantHeader;
    private final int[] toolHeader;
    /** The BOS id that starts every document, or -1 (tokenizer_config.json's add_bos_token, or a template that starts with it). */
    private final int bos;
    /** Ids of system prompts seen so far (read-only arrays; rendering threads share them). */
    private final java.util.Map<String, int[]> systemPrompts = new java.util.concurrent.ConcurrentHashMap<>();
    /** Bound on the prompts kept: a data set with a distinct system prompt per record gains nothing from more. */
    static final int MAX_CACHED_SYSTEM_PROMPTS = 1024;

    ChatMlTemplate(HfTokenizer tokenizer, LossOn lossOn, boolean superviseEos) {
        this(tokenizer, lossOn, superviseEos, null);
    }

    /** {@code bosToken}: the token that starts every document (unsupervised), or null for none. */
    ChatMlTemplate(HfTokenizer tokenizer, LossOn lossOn, boolean superviseEos, String bosToken) {
        this.bos = bosToken == null ? -1 : tokenizer.specialTokenId(bosToken);
        this.tokenizer = tokenizer;
        this.lossOn = lossOn;
        this.superviseEos = superviseEos;
        this.imStart = tokenizer.specialTokenId(IM_START);
        this.imEnd = tokenizer.specialTokenId(IM_END);
        int[][] fixed = tokenizer.encode(new String[] {"\n", "system\n", "user\n", "assistant\n", "tool\n"});
        this.newline = fixed[0];
        this.systemHeader = fixed[1];
        this.userHeader = fixed[2];
        this.assistantHeader = fixed[3];
        this.toolHeader = fixed[4];
    }

    @Override
    public LossOn lossOn() {
        return lossOn;
    }

    /** A description that keys caches: two templates with the same key render the same ids and masks. */
    @Override
    public String cacheKey() {
        // "/plain": records whose content holds a control string are refused (indexes made before are stale)
        return "chatml/plain/" + lossOn.configName() + "/eos=" + superviseEos + (bos < 0 ? "" : "/bos=" + bos);
    }

    /**
     * The token ids of every message content of the records, in order (one tokenizer call). System
     * prompts repeat across records (a few distinct ones per data set), so their ids are kept: a
     * text's ids do not depend on its neighbours (each content is encoded alone), so a cached
     * prompt gives exactly the ids a new encoding would. Other turns are rarely repeated and not kept.
     */
    @Override
    public int[][] encodeContents(List<ChatRecord> records) {
        int total = 0;
        for (ChatRecord r : records) {
            total += r.messages().size();
        }
        int[][] out = new int[total][];
        String[] missing = new String[total];
        int[] missingAt = new int[total];
        int n = 0;
        int k = 0;
        for (ChatRecord r : records) {
            for (Message m : r.messages()) {
                int[] known = m.role().equals(Message.SYSTEM) ? systemPrompts.get(m.content()) : null;
                if (known != null) {
                    out[k] = known;
                } else {
                    missing[n] = m.content();
                    missingAt[n++] = k;
                }
                k++;
            }
        }
        int[][] encoded = tokenizer.encode(n == total ? missing : java.util.Arrays.copyOf(missing, n));
        for (int i = 0; i < n; i++) {
            out[missingAt[i]] = encoded[i];
        }
        k = 0;
        for (ChatRecord r : records) {
            for (Message m : r.messages()) {
                if (m.role().equals(Message.SYSTEM) && systemPrompts.size() < MAX_CACHED_SYSTEM_PROMPTS) {
                    systemPrompts.putIfAbsent(m.content(), out[k]);
                }
                k++;
            }
        }
        return out;
    }

    /** The documents of the records from their contents' ids ({@link #encodeContents}): headers, markers, masks. */
    @Override
    public Document[] assembleAll(List<ChatRecord> records, int[][] encoded) {
        Document[] out = new Document[records.size()];
        int k = 0;
        for (int i = 0; i < out.length; i++) {
            List<Message> messages = records.get(i).messages();
            out[i] = assemble(messages, encoded, k);
            k += messages.size();
        }
        return out;
    }

    private Document assemble(List<Message> messages, int[][] encoded, int first) {
        String control = ChatTemplate.controlStringProblem(tokenizer, messages);
        if (control != null) {
            return Document.failed(control);
        }
        int lastAssistant = -1;
        int length = bos < 0 ? 0 : 1;
        for (int m = 0; m < messages.size(); m++) {
            if (messages.get(m).isAssistant()) {
                lastAssistant = m;
            }
            length += 1 + header(messages.get(m).role()).length + encoded[first + m].length + 1 + newline.length;
        }
        int[] ids = new int[length];
        boolean[] supervised = new boolean[length];
        int assistantTurns = 0;
        int eosMasked = 0;
        int p = bos < 0 ? 0 : put(ids, supervised, 0, bos, lossOn == LossOn.ALL);
        for (int m = 0; m < messages.size(); m++) {
            Message msg = messages.get(m);
            boolean answer = msg.isAssistant() && (lossOn == LossOn.ASSISTANT || (lossOn == LossOn.LAST_ASSISTANT && m == lastAssistant));
            boolean all = lossOn == LossOn.ALL;
            p = put(ids, supervised, p, imStart, all);
            p = put(ids, supervised, p, header(msg.role()), all);
            p = put(ids, supervised, p, encoded[first + m], all || answer);
            boolean eos = all || (answer && superviseEos);
            p = put(ids, supervised, p, imEnd, eos);
            p = put(ids, supervised, p, newline, all);
            if (msg.isAssistant()) {
                assistantTurns++;
                if (!eos && (answer || lossOn == LossOn.ALL)) {
                    eosMasked++;
                }
            }
        }
        return new Document(ids, supervised, assistantTurns, eosMasked);
    }

    private int[] header(String role) {
        return switch (role) {
            case Message.SYSTEM -> systemHeader;
            case Message.USER -> userHeader;
            case Message.ASSISTANT -> assistantHeader;
            case RecordParser.TOOL -> toolHeader;
            default -> throw new IllegalArgumentException("role " + role + " was not rejected by the parser");
        };
    }

    private static int put(int[] ids, boolean[] sup, int p, int id, boolean s) {
        ids[p] = id;
        sup[p] = s;
        return p + 1;
    }

    private static int put(int[] ids, boolean[] sup, int p, int[] seg, boolean s) {
        System.arraycopy(seg, 0, ids, p, seg.length);
        if (s) {
            java.util.Arrays.fill(sup, p, p + seg.length, true);
        }
        return p + seg.length;
    }
}
