package io.anneal.toolkit.chat;

import io.anneal.api.Experimental;
import io.anneal.api.data.Message;
import java.util.List;

/**
 * A chat example in the messages form ({@code {"messages": [...]}}), the unit a data source yields
 * for supervised fine-tuning.
 *
 * @param messages the turns in order
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.data before API 1.2 split it off)")
public record ChatRecord(List<Message> messages) {

    public ChatRecord {
        messages = List.copyOf(messages);
    }
}
