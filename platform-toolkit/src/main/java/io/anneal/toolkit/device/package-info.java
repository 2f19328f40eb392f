/** The libtorch DJL runs on and the device a run or command uses (auto, cpu, gpu), with the one line that says which and why. */
@Experimental(since = "1.2", note = "toolkit, not the contract")
package io.anneal.toolkit.device;

import io.anneal.api.Experimental;
