/** TorchScript classes compiled by libtorch from source kept in a plugin's jar, and called through DJL. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.torchscript;

import io.anneal.api.Experimental;
