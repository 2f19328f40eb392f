/** Operations DJL 0.36.0 gets wrong under autograd, done in ways that keep the graph and the memory it reads: device scalars, differentiable casts. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.autograd;

import io.anneal.api.Experimental;
