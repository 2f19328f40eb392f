package io.anneal.api.train;

import io.anneal.api.Stable;
import java.util.Map;

/**
 * Where a stage writes its metrics, one record per step. Names follow TRL ({@code loss},
 * {@code learning_rate}, {@code grad_norm}, {@code num_tokens}, {@code mean_token_accuracy}; for
 * DPO {@code rewards/chosen}, {@code rewards/margins}, ...), so dashboards built for TRL carry over.
 */
@Stable(since = "1.0")
public interface MetricsSink {

    void log(long step, Map<String, ?> metrics);

    /**
     * A resumed stage continues from {@code step}: records of later steps, written before the
     * interruption and about to be written again, are dropped, so each step is recorded once. A stage
     * that resumes from nothing calls it with 0. Since API 1.2; the default keeps everything.
     */
    default void restartAt(long step) {
    }
}
