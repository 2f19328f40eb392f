/**
 * Anneal plugin 'datamix': chat and preference sources, Hugging Face tokenizers, the ChatML
 * template with loss masks, per-source independent sampling with epoch accounting, and packing.
 * A plugin exports nothing: the runtime reaches it through the services it provides.
 */
module io.anneal.datamix {
    requires io.anneal.api;
    requires ai.djl.tokenizers;
    requires com.fasterxml.jackson.core;
    requires parquet.format.structures;
    requires aircompressor;

    provides io.anneal.api.plugin.Plugin with io.anneal.datamix.DatamixPlugin;
}
