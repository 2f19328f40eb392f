/** Anneal plugin 'mup'. A plugin exports nothing: the runtime reaches it through the services it provides. */
module io.anneal.mup {
    requires io.anneal.api;
    requires io.anneal.toolkit;
    requires ai.djl.api;

    provides io.anneal.api.plugin.Plugin with io.anneal.mup.MupPlugin;
}
