/** muP multiplier sets of the architectures Anneal knows, read from their checkpoints' config.json or a HOCON block. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.mup;

import io.anneal.api.Experimental;
