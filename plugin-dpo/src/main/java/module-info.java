/** Anneal plugin 'dpo'. A plugin exports nothing: the runtime reaches it through the services it provides. */
module io.anneal.dpo {
    requires io.anneal.api;
    requires io.anneal.toolkit;
    requires com.fasterxml.jackson.databind;

    provides io.anneal.api.plugin.Plugin with io.anneal.dpo.DpoPlugin;
}
