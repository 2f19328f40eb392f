package io.anneal.datamix;

import io.anneal.api.cli.CliCommand;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.plugin.Plugin;
import io.anneal.api.plugin.VersionRange;
import java.util.List;

/** Entry point of the 'datamix' plugin: the {@code mix} training data and the {@code data} command. */
public final class DatamixPlugin implements Plugin {
    @Override
    public String id() {
        return "datamix";
    }

    @Override
    public VersionRange apiRange() {
        return VersionRange.parse("[1.0,2.0)");
    }

    @Override
    public String description() {
        return "Chat data: sources, tokenizers, ChatML loss masks, per-source weighted sampling, packing";
    }

    @Override
    public List<ExtensionFactory<?>> extensions() {
        return List.of(new MixTrainingData.Factory(), new PreferenceTrainingData.Factory(), HfChatTokenizer.factory());
    }

    @Override
    public List<CliCommand> commands() {
        return List.of(new DataCommand());
    }
}
