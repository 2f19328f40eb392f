package io.anneal.archfixture.api;

import io.anneal.api.Experimental;

/** A planted API type (with a status) that depends on the toolkit: the contract must not. */
@Experimental(since = "1.2")
public interface ApiUsingTheToolkit {
    io.anneal.toolkit.cli.CommandArguments arguments();
}
