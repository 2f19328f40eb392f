package io.anneal.schedules.cli;

import io.anneal.api.InputException;
import io.anneal.api.cli.Charts;
import io.anneal.api.cli.CliCommand;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.api.units.TokenCount;
import io.anneal.schedules.theory.ConvexBound;
import io.anneal.toolkit.cli.CommandArguments;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code anneal schedule values|plot|bound FILE.conf ...}: inspects the schedules of a file that
 * holds {@code schedule { ... }}, {@code schedules { name1 { ... }, name2 { ... } }}, or a pipeline's
 * {@code stages = [ { name = ..., schedule { ... } }, ... ]}.
 */
public final class ScheduleCommand implements CliCommand {
    static final String USAGE = String.join("\n",
            "usage: anneal schedule values FILE.conf --at 25M,50M,1.55G [--stage NAME]",
            "       anneal schedule plot   FILE.conf --out lr.png [--points 1000] [--stage NAME]",
            "       anneal schedule bound  FILE.conf [--batch 1M] [--distance 1] [--lipschitz 1] [--stage NAME]",
            "FILE.conf holds schedule { type = ... }, schedules { name { type = ... }, ... }, or is a pipeline whose",
            "stages hold schedule blocks: each stage's schedule is named by the stage (its name, else its type);",
            "--stage NAME keeps one of them (default: all).",
            "bound: the convex last-iterate bound (Schaipp et al. 2025, Thm 1) with the schedule sampled every --batch",
            "tokens, the optimal peak LR for its shape, and the first schedule's peak (by name) transferred to the others.");

    @Override
    public String name() {
        return "schedule";
    }

    @Override
    public String summary() {
        return "print, plot or bound learning-rate schedules (values, plot, bound)";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws Exception {
        if (args.isEmpty() || args.get(0).equals("--help") || args.get(0).equals("-h")) {
            context.out().println(USAGE);
            return args.isEmpty() ? 2 : 0;
        }
        String sub = args.get(0);
        String[] known = switch (sub) {
            case "values" -> new String[] {"at", "stage"};
            case "plot" -> new String[] {"out", "points", "stage"};
            case "bound" -> new String[] {"batch", "distance", "lipschitz", "stage"};
            default -> throw new InputException("unknown subcommand '" + sub + "'; expected values, plot or bound\n" + USAGE);
        };
        CommandArguments a = CommandArguments.parse("anneal schedule " + sub, USAGE, args.subList(1, args.size()), known);
        if (a.help()) {
            context.out().println(USAGE);
            return 0;
        }
        Path file = context.workingDirectory().resolve(a.onePositional("one FILE.conf"));
        Map<String, LrSchedule> schedules = load(file, context);
        if (a.has("stage")) {
            String stage = a.required("stage");
            if (!schedules.containsKey(stage)) {
                throw new InputException(file + ": --stage " + stage + ": expected one of " + String.join(", ", schedules.keySet())
                        + ", found no schedule of that name");
            }
            schedules = Map.of(stage, schedules.get(stage));
        }
        switch (sub) {
            case "values" -> values(schedules, a, context);
            case "plot" -> plot(schedules, a, context);
            default -> bound(schedules, a, context);
        }
        return 0;
    }

    /**
     * The schedules of the file, by name: "schedule" for a single block, the names under
     * {@code schedules}, and each pipeline stage's by the stage's name (its type when it has none).
     */
    static Map<String, LrSchedule> load(Path file, CommandContext context) {
        ConfigView root = context.readConfig(file);
        Map<String, LrSchedule> out = new LinkedHashMap<>();
        if (root.has("schedule")) {
            out.put("schedule", context.extensions().build(LrSchedule.class, root.getConfig("schedule")));
        }
        if (root.has("schedules")) {
            ConfigView all = root.getConfig("schedules");
            for (String name : new java.util.TreeSet<>(all.keys())) { // HOCON objects are unordered: by name
                out.put(name, context.extensions().build(LrSchedule.class, all.getConfig(name)));
            }
        }
        if (root.has("stages")) {
            for (ConfigView stage : root.getConfigList("stages")) {
                if (stage.has("schedule")) {
                    String name = stage.has("name") ? stage.getString("name") : stage.has("type") ? stage.getString("type") : stage.path();
                    out.put(out.containsKey(name) ? stage.path() : name,
                            context.extensions().build(LrSchedule.class, stage.getConfig("schedule")));
                }
            }
        }
        if (out.isEmpty()) {
            throw new InputException(file + ": expected a block schedule { type = ... }, schedules { name { type = ... } }"
                    + " or stages = [ { schedule { type = ... } } ], found none of them");
        }
        return out;
    }

    private static void values(Map<String, LrSchedule> schedules, CommandArguments a, CommandContext context) {
        List<Long> points = a.tokenList("at");
        for (Map.Entry<String, LrSchedule> e : schedules.entrySet()) {
            String prefix = schedules.size() > 1 ? e.getKey() + " " : "";
            for (long t : points) {
                context.out().println(prefix + TokenCount.format(t) + " " + String.format(Locale.ROOT, "%.12g", e.getValue().lrAt(t)));
            }
        }
    }

    private static void plot(Map<String, LrSchedule> schedules, CommandArguments a, CommandContext context) throws Exception {
        String out = a.required("out");
        int points = a.positiveInt("points", 1000);
        long end = 0;
        for (LrSchedule s : schedules.values()) {
            long h = s.horizonTokens() == Long.MAX_VALUE ? 0 : s.horizonTokens();
            end = Math.max(end, h);
        }
        if (end == 0) {
            throw new InputException("every schedule is open-ended; give one a total so the plot has a range");
        }
        end += end / 20; // show that the LR holds past the end
        List<Charts.Series> series = new ArrayList<>();
        for (Map.Entry<String, LrSchedule> e : schedules.entrySet()) {
            double[] x = new double[points + 1];
            double[] y = new double[points + 1];
            for (int i = 0; i <= points; i++) {
                long t = Math.round((double) end * i / points);
                x[i] = t;
                y[i] = e.getValue().lrAt(t);
            }
            series.add(new Charts.Series(e.getKey(), x, y));
        }
        Path png = context.workingDirectory().resolve(out);
        context.charts().linePlot(png, "learning rate", "tokens", Charts.Axis.TOKENS, "learning rate", Charts.Axis.LINEAR, series);
        context.out().println("wrote " + png);
    }

    private static void bound(Map<String, LrSchedule> schedules, CommandArguments a, CommandContext context) {
        long batch = a.tokens("batch", 1_000_000L);
        double d = a.positiveNumber("distance", 1);
        double g = a.positiveNumber("lipschitz", 1);
        context.out().printf(Locale.ROOT, "convex bound (Schaipp et al. 2025, Thm 1), D = %s, G = %s, %s tokens per step%n",
                d, g, TokenCount.format(batch));
        String first = null;
        double[] firstShape = null;
        double firstPeak = 0;
        for (Map.Entry<String, LrSchedule> e : schedules.entrySet()) {
            LrSchedule s = e.getValue();
            double[] shape;
            try {
                shape = ConvexBound.shapePerStep(s, batch);
            } catch (IllegalArgumentException ex) {
                throw new InputException(e.getKey() + ": " + ex.getMessage());
            }
            double[] eta = shape.clone();
            for (int i = 0; i < eta.length; i++) {
                eta[i] *= s.peakLr();
            }
            double atPeak = ConvexBound.terms(eta, d, g).total();
            context.out().printf(Locale.ROOT, "%s: %d steps, bound %.6g at peak %.6g; optimal peak %.6g gives %.6g%n",
                    e.getKey(), shape.length, atPeak, s.peakLr(), ConvexBound.optimalScale(shape, d, g),
                    ConvexBound.optimalBound(shape, d, g));
            if (first == null) {
                first = e.getKey();
                firstShape = shape;
                firstPeak = s.peakLr();
            } else {
                context.out().printf(Locale.ROOT, "  %s's peak %.6g transfers to %.6g here%n", first, firstPeak,
                        ConvexBound.transferPeak(firstPeak, firstShape, shape));
            }
        }
    }
}
