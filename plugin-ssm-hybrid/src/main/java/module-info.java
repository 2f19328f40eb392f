/** Anneal plugin 'ssm-hybrid'. A plugin exports nothing: the runtime reaches it through the services it provides. */
module io.anneal.hybrid {
    requires io.anneal.api;
    requires io.anneal.toolkit;
    requires ai.djl.api;
    requires com.fasterxml.jackson.databind;
    requires java.management; // MemoryUsage of DJL's CudaUtils, in the benchmark

    provides io.anneal.api.plugin.Plugin with io.anneal.hybrid.HybridPlugin;
}
