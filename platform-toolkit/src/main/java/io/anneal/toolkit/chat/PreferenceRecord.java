package io.anneal.toolkit.chat;

import io.anneal.api.Experimental;
import io.anneal.api.data.Message;
import java.util.List;

/**
 * A preference pair for DPO. Both JSONL forms map to it: {@code {"chosen": messages, "rejected":
 * messages}} (the shared leading turns become the prompt) and {@code {"prompt": messages,
 * "chosen": messages, "rejected": messages}}.
 *
 * @param prompt   the turns both answers share
 * @param chosen   the preferred continuation
 * @param rejected the dispreferred continuation
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.data before API 1.2 split it off)")
public record PreferenceRecord(List<Message> prompt, List<Message> chosen, List<Message> rejected) {

    public PreferenceRecord {
        prompt = List.copyOf(prompt);
        chosen = List.copyOf(chosen);
        rejected = List.copyOf(rejected);
    }
}
