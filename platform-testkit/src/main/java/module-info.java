/** Test support for plugin authors: used in test scope, never shipped in the distribution. */
module io.anneal.testkit {
    requires transitive io.anneal.api;
    requires transitive typesafe.config;
    // the allocation a parse causes (ParserContract): com.sun.management.ThreadMXBean
    requires jdk.management;

    exports io.anneal.testkit;
}
