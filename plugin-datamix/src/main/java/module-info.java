/**
 * Anneal plugin 'datamix': chat and preference sources, Hugging Face tokenizers, chat templates (the ChatML fast path and a tokenizer's own Jinja template)
 * with loss masks, per-source independent sampling with epoch accounting, and packing.
 * A plugin exports nothing: the runtime reaches it through the services it provides.
 */
module io.anneal.datamix {
    requires io.anneal.api;
    requires io.anneal.toolkit;
    requires ai.djl.tokenizers;
    requires com.fasterxml.jackson.core;
    requires parquet.format.structures;
    requires aircompressor;
    // template = auto: Jinjava renders the tokenizer's chat template; tokenizer_config.json through jackson-databind.
    requires jinjava;
    requires com.fasterxml.jackson.databind;

    provides io.anneal.api.plugin.Plugin with io.anneal.datamix.DatamixPlugin;
}
