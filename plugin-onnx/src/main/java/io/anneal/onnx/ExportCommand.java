package io.anneal.onnx;

import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** {@code anneal export onnx --checkpoint DIR --out DIR}: the prefill and decode graphs of a Falcon-H1 checkpoint. */
final class ExportCommand implements CliCommand {
    static final String USAGE = "usage: anneal export onnx --checkpoint DIR --out DIR";

    @Override
    public String name() {
        return "export";
    }

    @Override
    public String summary() {
        return "export onnx: a Falcon-H1 checkpoint as ONNX prefill and decode graphs (opset 17) for ONNX Runtime";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws IOException {
        if (args.isEmpty() || args.get(0).equals("--help") || args.get(0).equals("-h")) {
            context.out().println(USAGE);
            context.out().println("  --checkpoint DIR  Hugging Face Falcon-H1 folder (config.json, model.safetensors)");
            context.out().println("  --out DIR         where prefill.onnx, decode.onnx, weights.onnx.data, anneal-onnx.json and the");
            context.out().println("                    checkpoint's tokenizer files go (created; earlier export files replaced)");
            return args.isEmpty() ? 2 : 0;
        }
        if (!args.get(0).equals("onnx")) {
            throw new InputException("anneal export: unknown format '" + args.get(0) + "'; expected onnx\n" + USAGE);
        }
        CommandArguments a = CommandArguments.parse("anneal export onnx", USAGE, args.subList(1, args.size()), "checkpoint",
                "out");
        a.noPositionals();
        Path wd = context.workingDirectory();
        Path checkpoint = wd.resolve(a.required("checkpoint"));
        Path out = wd.resolve(a.required("out"));
        OnnxExport.export(context.extensions(), checkpoint, out, context.out());
        return 0;
    }
}
