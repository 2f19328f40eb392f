/** The chat records a data source yields: a messages example for supervised fine-tuning and a preference pair for DPO. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.chat;

import io.anneal.api.Experimental;
