package io.anneal.dpo;

import io.anneal.api.config.ConfigView;
import io.anneal.api.data.TrainingData;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.api.train.Objective;
import io.anneal.api.train.Stage;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code stages = [ ..., { type = dpo, objective { type = dpo_norm, beta = 5 }, data { type = preferences, ... }, ... } ]}:
 * the runtime's training loop ({@link ExtensionContext#trainingStage}) with a preference objective.
 * Its keys are the sft stage's, with DPO defaults (seed 000) in this plugin's reference.conf.
 */
final class DpoStageFactory implements ExtensionFactory<Stage> {
    static final String OBJECTIVE = "objective";

    @Override
    public Class<Stage> extensionPoint() {
        return Stage.class;
    }

    @Override
    public String type() {
        return "dpo";
    }

    @Override
    public String description() {
        return "preference optimisation (DPO and its variants) through the runtime's training loop";
    }

    @Override
    public Map<String, Class<?>> nestedExtensions() {
        Map<String, Class<?>> nested = new LinkedHashMap<>();
        nested.put("schedule", LrSchedule.class);
        nested.put("optimizer", OptimizerFactory.class);
        nested.put("data", TrainingData.class);
        nested.put("eval-data", TrainingData.class);
        nested.put(OBJECTIVE, Objective.class);
        return nested;
    }

    @Override
    public Stage create(ConfigView config, ExtensionContext context) {
        Objective objective = context.build(Objective.class, config.getConfig(OBJECTIVE));
        return context.trainingStage(config, objective);
    }
}
