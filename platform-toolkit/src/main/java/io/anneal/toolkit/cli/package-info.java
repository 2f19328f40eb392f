/** Argument parsing for plugin commands, with errors that name the command, the option and the usage. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.cli;

import io.anneal.api.Experimental;
