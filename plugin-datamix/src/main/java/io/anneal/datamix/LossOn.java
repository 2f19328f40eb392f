package io.anneal.datamix;

import io.anneal.api.config.ConfigView;

/** Which tokens of a chat the loss supervises ({@code loss-on} in the data block). */
enum LossOn {
    /** Every assistant turn, with the {@code <|im_end|>} that ends it (the default, as in Tulu 3 SFT). */
    ASSISTANT,
    /** Only the last assistant turn (multi-turn data where earlier answers are context). */
    LAST_ASSISTANT,
    /** Every token (continued pre-training on chats). */
    ALL;

    String configName() {
        return ConfigView.configName(this);
    }
}
