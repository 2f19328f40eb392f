package io.anneal.api.data;

import io.anneal.api.Experimental;
import java.util.List;
import java.util.Set;

/**
 * A tokenizer with its chat template, for generation ({@code anneal generate}, {@code anneal chat}):
 * built by type name through
 * {@link io.anneal.api.extension.ExtensionContext#build(Class, String, java.util.Map, String)} with
 * the setting {@code folder} (a Hugging Face tokenizer folder, such as a model folder Anneal wrote),
 * so a generating plugin never names the data plugin's classes.
 */
@Experimental(since = "1.2", note = "tools and multi-modal content are not covered yet")
public interface ChatTokenizer extends AutoCloseable {

    /**
     * The ids of {@code messages} rendered by the folder's chat template with the generation prompt
     * (transformers' {@code apply_chat_template(messages, add_generation_prompt=True, tokenize=True)}),
     * ready for the model to write the assistant's turn.
     *
     * @throws io.anneal.api.InputException where the template refuses the conversation
     */
    long[] encodePrompt(List<Message> messages);

    /** The text of {@code ids}, special tokens left out. */
    String decode(long[] ids);

    /** The ids that end an assistant turn (the template's end-of-turn token and the EOS). */
    Set<Long> endOfTurn();

    @Override
    void close();
}
