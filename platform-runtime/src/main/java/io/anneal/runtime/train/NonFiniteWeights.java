package io.anneal.runtime.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.anneal.api.optim.NamedParameter;

import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * Finds NaN or infinite values in a model's weights. A checkpoint is the run's promise of a state to go
 * back to: weights that are no longer finite are never written as one, never resumed from, and never
 * published (issue 15: NaN weights had been reported as the "last good checkpoint").
 */
final class NonFiniteWeights {
    private NonFiniteWeights() {
    }

    /** The first parameter holding a NaN or an infinity, with the count; empty when every weight is finite. */
    static Optional<String> find(List<NamedParameter> parameters) {
        for (NamedParameter p : parameters) {
            NDArray weights = p.parameter().getArray();
            try (NDManager scope = weights.getManager().newSubManager()) {
                NDArray nan = weights.isNaN();
                NDArray infinite = weights.isInfinite();
                nan.attach(scope);
                infinite.attach(scope);
                NDArray bad = nan.logicalOr(infinite);
                bad.attach(scope);
                NDArray count = bad.countNonzero();
                count.attach(scope);
                long n = count.toType(ai.djl.ndarray.types.DataType.INT64, false).getLong();
                if (n > 0) {
                    return Optional.of(String.format(Locale.ROOT, "%s holds %,d NaN or infinite value%s of %,d", p.name(), n,
                            n == 1 ? "" : "s", weights.size()));
                }
            }
        }
        return Optional.empty();
    }
}
