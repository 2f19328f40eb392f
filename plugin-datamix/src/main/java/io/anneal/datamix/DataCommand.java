package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.api.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** {@code anneal data plan FILE.conf}: expected epochs per source for each {@code type = mix} block's budget. */
final class DataCommand implements CliCommand {
    static final String USAGE = "usage: anneal data plan FILE.conf\n"
            + "  Prints, for every data block (type = mix) of the pipeline, the expected tokens and epochs of each\n"
            + "  source for the block's budget: epochs = budget * share / tokens per epoch. Token counts are\n"
            + "  computed once per file, with its token cache, and kept next to it (<file>.anneal-index,\n"
            + "  <file>.anneal-tokens) or in the block's cache-dir.";

    @Override
    public String name() {
        return "data";
    }

    @Override
    public String summary() {
        return "data tools: 'data plan FILE.conf' prints expected epochs per source for the budget";
    }

    @Override
    public int run(List<String> args, CommandContext context) {
        if (args.isEmpty() || args.contains("--help") || args.contains("-h")) {
            context.out().println(USAGE);
            return args.isEmpty() ? 2 : 0;
        }
        if (!"plan".equals(args.get(0))) {
            throw new InputException("anneal data: unknown subcommand '" + args.get(0) + "', expected plan\n" + USAGE);
        }
        CommandArguments a = CommandArguments.parse("anneal data plan", USAGE, args.subList(1, args.size()));
        Path file = context.workingDirectory().resolve(a.onePositional("one FILE.conf"));
        ConfigView root = context.loadConfig(file);
        List<ConfigView> blocks = new ArrayList<>();
        findMixBlocks(root, blocks);
        if (blocks.isEmpty()) {
            throw new InputException(file + ": expected at least one data block with type = mix, found none");
        }
        MixTrainingData.Factory factory = new MixTrainingData.Factory();
        for (ConfigView block : blocks) {
            MixTrainingData data = factory.create(block, context.extensions());
            List<String> report = new ArrayList<>();
            ChatSource[] sources = data.openSources(report);
            context.out().println("== " + (block.path().isEmpty() ? "(root)" : block.path()) + " (" + block.origin("").description() + ")");
            for (String line : report) {
                context.out().println(line);
            }
            context.out().print(DataPlan.render(DataPlan.plan(sources, data.budget()), data.budget()));
            for (ChatSource s : sources) {
                s.close();
            }
        }
        return 0;
    }

    /** Every block (in maps and lists of maps, depth first, in key order) whose type is mix. */
    static void findMixBlocks(ConfigView view, List<ConfigView> out) {
        Map<String, Object> values = view.unwrapped();
        if ("mix".equals(values.get("type")) && values.containsKey("sources")) {
            out.add(view);
            return;
        }
        for (String key : new java.util.TreeSet<>(view.keys())) {
            Object v = values.get(key);
            if (v instanceof Map<?, ?>) {
                findMixBlocks(view.getConfig(key), out);
            } else if (v instanceof List<?> list && !list.isEmpty() && list.get(0) instanceof Map<?, ?>) {
                for (ConfigView element : view.getConfigList(key)) {
                    findMixBlocks(element, out);
                }
            }
        }
    }
}
