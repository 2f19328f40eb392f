/**
 * The Anneal platform API: the extension points that plugins implement and the value types they
 * exchange. It depends on DJL's api and nothing of Anneal's, so a plugin compiled against it runs
 * on any runtime whose API version is inside the plugin's declared range.
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
    exports io.anneal.api.torchscript;

    uses io.anneal.api.plugin.Plugin;
}
