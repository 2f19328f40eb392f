/** Each label's log-probability under a model for a packed micro-batch: what SFT and preference objectives score. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.scoring;

import io.anneal.api.Experimental;
