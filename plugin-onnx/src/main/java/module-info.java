/** Anneal plugin 'onnx'. A plugin exports nothing: the runtime reaches it through the services it provides. */
module io.anneal.onnx {
    requires io.anneal.api;
    requires io.anneal.toolkit;
    requires ai.djl.api;
    requires com.fasterxml.jackson.databind;
    requires com.microsoft.onnxruntime;

    provides io.anneal.api.plugin.Plugin with io.anneal.onnx.OnnxPlugin;
}
