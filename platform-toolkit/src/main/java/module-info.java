/**
 * The Anneal platform toolkit: helpers that plugin authors may use but the contract
 * ({@code io.anneal.api}) does not promise, kept apart as Trino keeps its helpers in
 * {@code trino-plugin-toolkit}. Every type is {@link io.anneal.api.Experimental}: a toolkit type may
 * change or go in any minor API version. It depends on the API and DJL's api only; the API never
 * depends on it. The runtime ships it in {@code lib/}, so plugin layers see it through their parent
 * layer: a plugin declares it {@code provided} and never bundles it.
 */
module io.anneal.toolkit {
    requires transitive io.anneal.api;

    exports io.anneal.toolkit.autograd;
    exports io.anneal.toolkit.chat;
    exports io.anneal.toolkit.cli;
    exports io.anneal.toolkit.device;
    exports io.anneal.toolkit.gradients;
    exports io.anneal.toolkit.mup;
    exports io.anneal.toolkit.scoring;
    exports io.anneal.toolkit.torchscript;
}
