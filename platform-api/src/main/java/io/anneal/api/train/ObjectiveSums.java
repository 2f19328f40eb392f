package io.anneal.api.train;

import ai.djl.ndarray.NDArray;
import io.anneal.api.Experimental;
import java.util.Map;

/**
 * What an {@link Objective} returns for one micro-batch.
 *
 * @param loss    scalar float32: the SUM of the micro-batch's loss terms, with its autograd graph;
 *                the trainer divides it by the batch's denominator (and multiplies by the loss scale)
 *                before the backward pass
 * @param metrics scalar float32 sums by metric name (detached), each logged as sum / denominator
 * @since API 1.2
 */
@Experimental(since = "1.2")
public record ObjectiveSums(NDArray loss, Map<String, NDArray> metrics) {

    public ObjectiveSums {
        metrics = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(metrics));
    }
}
