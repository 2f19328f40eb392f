/**
 * The Anneal runtime: discovers plugins (one module layer each), loads and validates HOCON
 * pipelines, wires extensions with Guice, runs stages, and offers the {@code anneal} CLI.
 * It names no plugin class: plugins reach it only through {@code io.anneal.api}.
 */
module io.anneal.runtime {
    requires io.anneal.api;
    requires io.anneal.toolkit;
    requires ai.djl.api;
    requires com.google.guice;
    requires typesafe.config;
    requires info.picocli;
    requires com.fasterxml.jackson.databind;
    requires org.knowm.xchart;
    requires java.desktop;
    requires java.management; // MemoryUsage of DJL's CudaUtils, in anneal env
    // sun.misc.Signal: SIGINT and SIGTERM stop a run between steps (pipeline.StopSignals)
    requires jdk.unsupported;

    uses io.anneal.api.plugin.Plugin;

    opens io.anneal.runtime.cli to info.picocli;
    opens io.anneal.runtime.pipeline to com.google.guice;
    opens io.anneal.runtime.output to com.google.guice;
    opens io.anneal.runtime.wiring to com.google.guice;
    // the core plugin's reference.conf is read through Class.getResource
    opens io.anneal.runtime.builtin;
}
