/**
 * The Anneal platform API: the extension points that plugins implement and the value types they
 * exchange. It depends on DJL's api and nothing of Anneal's, so a plugin compiled against it runs
 * on any runtime whose API version is inside the plugin's declared range. It is the contract only:
 * helpers plugins may use (TorchScript modules, device scalars, argument parsing, ...) live in the
 * toolkit, {@code io.anneal.toolkit}, which depends on this module and never the other way round.
 */
module io.anneal.api {
    requires transitive ai.djl.api;

    exports io.anneal.api;
    exports io.anneal.api.plugin;
    exports io.anneal.api.extension;
    exports io.anneal.api.config;
    exports io.anneal.api.units;
    exports io.anneal.api.schedule;
    exports io.anneal.api.optim;
    exports io.anneal.api.model;
    exports io.anneal.api.data;
    exports io.anneal.api.train;
    exports io.anneal.api.cli;

    uses io.anneal.api.plugin.Plugin;
}
