package io.anneal.archfixture.toolkit;

import io.anneal.api.Experimental;
import io.anneal.runtime.cli.Main;

/** A planted "toolkit" type that calls into the runtime. */
@Experimental(since = "1.2")
public final class ToolkitReachingIntoTheRuntime {
    private ToolkitReachingIntoTheRuntime() {
    }

    public static void reach() {
        Main.main(new String[0]);
    }
}
