package io.anneal.archfixture.toolkit;

import io.anneal.api.Stable;

/** A planted "toolkit" type that promises stability: the toolkit must not. */
@Stable(since = "1.2")
public final class StableToolkitType {
    private StableToolkitType() {
    }
}
