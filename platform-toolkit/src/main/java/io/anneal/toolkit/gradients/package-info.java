/** Whole-model gradient bookkeeping (global norm, zeroing, flattening) in one libtorch call each. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.gradients;

import io.anneal.api.Experimental;
