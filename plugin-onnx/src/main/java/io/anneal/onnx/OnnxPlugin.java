package io.anneal.onnx;

import io.anneal.api.cli.CliCommand;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.plugin.Plugin;
import io.anneal.api.plugin.VersionRange;
import java.util.List;

/** Entry point of the 'onnx' plugin: ONNX export, the onnx inference engine, generation and chat. */
public final class OnnxPlugin implements Plugin {
    @Override
    public String id() {
        return "onnx";
    }

    @Override
    public VersionRange apiRange() {
        return VersionRange.parse("[1.2,2.0)");
    }

    @Override
    public String description() {
        return "ONNX export of Falcon-H1 checkpoints; scoring, generation and chat with ONNX Runtime";
    }

    @Override
    public List<ExtensionFactory<?>> extensions() {
        return List.of(new OnnxInferenceEngine.Factory(), new OnnxSequenceScorer.Factory(), new EvaluateStage.Factory());
    }

    @Override
    public List<CliCommand> commands() {
        return List.of(new ExportCommand(), new GenerateCommand(), new ChatCommand(), new BenchCommand());
    }
}
