package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import io.anneal.api.data.SourceProgress;
import io.anneal.api.data.TokenBatchStream;
import io.anneal.api.data.TrainingData;
import io.anneal.api.schedule.LrSchedule;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** {@code anneal data plan FILE.conf}: expected epochs per source for each {@code type = mix} block's budget. */
final class DataCommand implements CliCommand {
    private static final Pattern STAGE_BLOCK = Pattern.compile("stages\\[([0-9]+)\\]\\.(data|eval-data)");
    static final String USAGE = "usage: anneal data plan FILE.conf\n"
            + "  Prints, for every data block (type = mix) of the pipeline, the expected tokens and epochs of each\n"
            + "  source for the block's budget: epochs = budget * share / tokens per epoch. The budget is the block's\n"
            + "  own budget when set, else the stage's (token-budget, or where its schedule stops) for its data and\n"
            + "  eval-tokens for its eval-data. For a preference block (type = preferences) it counts one epoch of\n"
            + "  pairs, one per row of the stage's sequence length, and prints the epoch's tokens (epoch-tokens). Token counts are\n"
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
        List<ConfigView> preferenceBlocks = new ArrayList<>();
        findBlocks(root, "preferences", preferenceBlocks);
        if (blocks.isEmpty() && preferenceBlocks.isEmpty()) {
            throw new InputException(file + ": expected at least one data block with type = mix or preferences, found none");
        }
        for (ConfigView block : preferenceBlocks) {
            planPreferences(root, block, context);
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
            long budget = budget(root, block, data, context);
            context.out().print(DataPlan.render(DataPlan.plan(sources, budget), budget));
            for (ChatSource s : sources) {
                s.close();
            }
        }
        return 0;
    }

    /**
     * The tokens a block is read for: its own {@code budget} when set; else, in a pipeline, the
     * stage's budget for its {@code data} ({@code token-budget}, or where its schedule stops) and
     * {@code eval-tokens} for its {@code eval-data} (each evaluation reads the same tokens).
     */
    static long budget(ConfigView root, ConfigView block, MixTrainingData data, CommandContext context) {
        Matcher m = STAGE_BLOCK.matcher(block.path());
        if (data.budget() > 0 || !m.matches()) {
            return data.budget();
        }
        ConfigView stage = root.getConfigList("stages").get(Integer.parseInt(m.group(1)));
        if (m.group(2).equals("eval-data")) {
            return stage.has("eval-tokens") ? stage.getTokens("eval-tokens").tokens() : 0;
        }
        if (stage.has("token-budget") && !stage.getString("token-budget").trim().equalsIgnoreCase("schedule")) {
            return stage.getTokens("token-budget").tokens();
        }
        if (stage.has("schedule")) {
            long stop = context.extensions().build(LrSchedule.class, stage.getConfig("schedule")).stopTokens();
            return stop == Long.MAX_VALUE ? 0 : stop;
        }
        return 0;
    }

    /**
     * A preference block of a stage: one epoch of its pairs packed into rows of the stage's
     * sequence length, as training packs them, so a schedule in epochs (Falcon-H1 DPO: linear to
     * zero over 2 epochs, stopped at about 1; seed 000) gets its {@code epoch-tokens}.
     */
    private static void planPreferences(ConfigView root, ConfigView block, CommandContext context) {
        Matcher m = STAGE_BLOCK.matcher(block.path());
        if (!m.matches()) {
            return;
        }
        ConfigView stage = root.getConfigList("stages").get(Integer.parseInt(m.group(1)));
        int length = (int) stage.getLong("sequence-length");
        TrainingData data = new PreferenceTrainingData.Factory().create(block, context.extensions());
        context.out().println("== " + block.path() + " (" + block.origin("").description() + ")");
        try (TokenBatchStream stream = data.open(length)) {
            long rows = 0;
            do {
                stream.next(1);
                rows++;
            } while (!stream.progress().stream().allMatch(p -> p.epochs() >= 1.0));
            for (SourceProgress p : stream.progress()) {
                context.out().println(String.format(java.util.Locale.ROOT, "%s: %d tokens in one epoch", p.source(), p.tokens()));
            }
            context.out().println("one epoch: " + rows + " pairs, one per row of " + length + " tokens: epoch-tokens = "
                    + rows * length + " (for a schedule in epochs: total-epochs, stop-at-epochs; batch-pairs = B gives "
                    + "ceil(" + rows + " / B) steps per epoch)");
        }
    }

    /** Every block (in maps and lists of maps, depth first, in key order) whose type is mix. */
    static void findMixBlocks(ConfigView view, List<ConfigView> out) {
        findBlocks(view, "mix", out);
    }

    /** Every block (in maps and lists of maps, depth first, in key order) with sources whose type is {@code type}. */
    static void findBlocks(ConfigView view, String type, List<ConfigView> out) {
        Map<String, Object> values = view.unwrapped();
        if (type.equals(values.get("type")) && values.containsKey("sources")) {
            out.add(view);
            return;
        }
        for (String key : new java.util.TreeSet<>(view.keys())) {
            Object v = values.get(key);
            if (v instanceof Map<?, ?>) {
                findBlocks(view.getConfig(key), type, out);
            } else if (v instanceof List<?> list && !list.isEmpty() && list.get(0) instanceof Map<?, ?>) {
                for (ConfigView element : view.getConfigList(key)) {
                    findBlocks(element, type, out);
                }
            }
        }
    }
}
