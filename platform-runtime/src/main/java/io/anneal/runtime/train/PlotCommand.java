package io.anneal.runtime.train;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.anneal.api.InputException;
import io.anneal.api.cli.Charts;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CliCommand;
import io.anneal.api.cli.CommandContext;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * {@code anneal plot METRICS.jsonl --out loss.png [--metrics loss,eval_loss,learning_rate]}: line
 * charts of per-step metrics against tokens seen ({@code num_tokens}). Metrics whose names contain
 * {@code loss} share the chart written to {@code --out}; every other metric gets its own chart next to
 * it ({@code loss-learning_rate.png}), since a learning rate and a loss share no useful scale.
 */
public final class PlotCommand implements CliCommand {
    static final String X_FIELD = "num_tokens";
    /** NaN and Infinity are accepted: a skipped float16 step logs a NaN gradient norm. */
    private static final ObjectMapper JSON = JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();
    private static final String USAGE = "usage: anneal plot METRICS.jsonl --out FILE.png [--metrics loss,eval_loss,learning_rate]";

    @Override
    public String name() {
        return "plot";
    }

    @Override
    public String summary() {
        return "plot per-step metrics (loss, eval_loss, learning_rate, ...) of a metrics JSONL file against tokens";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws Exception {
        CommandArguments a = CommandArguments.parse("anneal plot", USAGE, args, "out", "metrics");
        if (a.help()) {
            context.out().println(USAGE);
            context.out().println("  --out FILE.png    chart of the *loss* metrics; other metrics go to FILE-<metric>.png");
            context.out().println("  --metrics LIST    comma-separated metric names (default loss,eval_loss)");
            return 0;
        }
        Path metricsFile = context.workingDirectory().resolve(a.onePositional("the metrics file (METRICS.jsonl)"));
        Path out = context.workingDirectory().resolve(a.required("out"));
        List<String> metrics = a.list("metrics", List.of("loss", "eval_loss"));
        Map<String, Charts.Series> series = read(metricsFile, metrics);
        List<Charts.Series> losses = new ArrayList<>();
        Map<Path, Charts.Series> separate = new LinkedHashMap<>();
        for (Charts.Series s : series.values()) {
            if (s.name().contains("loss")) {
                losses.add(s);
            } else {
                separate.put(sibling(out, s.name()), s);
            }
        }
        if (!losses.isEmpty()) {
            context.charts().linePlot(out, "loss", "tokens", Charts.Axis.TOKENS, "loss", Charts.Axis.LINEAR, losses);
            context.out().println("wrote " + out + " (" + String.join(", ", losses.stream().map(Charts.Series::name).toList()) + ")");
        }
        for (Map.Entry<Path, Charts.Series> e : separate.entrySet()) {
            context.charts().linePlot(e.getKey(), e.getValue().name(), "tokens", Charts.Axis.TOKENS, e.getValue().name(),
                    Charts.Axis.LINEAR, List.of(e.getValue()));
            context.out().println("wrote " + e.getKey() + " (" + e.getValue().name() + ")");
        }
        return 0;
    }

    /**
     * One series per requested metric, from the lines that carry it; x is {@code num_tokens}.
     *
     * @throws InputException naming the file and line of a malformed record, or a metric found nowhere
     */
    public static Map<String, Charts.Series> read(Path file, List<String> metrics) throws IOException {
        List<String> lines;
        try {
            lines = Files.readAllLines(file);
        } catch (NoSuchFileException e) {
            throw new InputException("anneal plot: no metrics file " + file);
        }
        Map<String, List<double[]>> points = new LinkedHashMap<>();
        Set<String> available = new TreeSet<>(); // every numeric field of a point, for the message when none is asked for
        for (String m : metrics) {
            points.put(m, new ArrayList<>());
        }
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty()) {
                continue;
            }
            JsonNode record;
            try {
                record = JSON.readTree(line);
            } catch (JsonProcessingException e) {
                throw new InputException(file + ":" + (i + 1) + ": expected one JSON object per line, found: "
                        + abbreviate(line) + " (" + e.getOriginalMessage() + ")");
            }
            if (record == null || !record.isObject()) {
                throw new InputException(file + ":" + (i + 1) + ": expected one JSON object per line, found: " + abbreviate(line));
            }
            JsonNode x = record.get(X_FIELD);
            if (x == null || !x.isNumber()) {
                continue; // records without a token count (e.g. a failed-checkpoint note) are not points
            }
            record.fields().forEachRemaining(f -> {
                if (f.getValue().isNumber() && !f.getKey().equals(X_FIELD)) {
                    available.add(f.getKey());
                }
            });
            for (String m : metrics) {
                JsonNode y = record.get(m);
                if (y != null && y.isNumber() && Double.isFinite(y.asDouble())) {
                    points.get(m).add(new double[] {x.asDouble(), y.asDouble()});
                }
            }
        }
        Map<String, Charts.Series> series = new LinkedHashMap<>();
        List<String> missing = new ArrayList<>();
        for (Map.Entry<String, List<double[]>> e : points.entrySet()) {
            List<double[]> p = e.getValue();
            if (p.isEmpty()) {
                missing.add(e.getKey());
                continue;
            }
            double[] xs = new double[p.size()];
            double[] ys = new double[p.size()];
            for (int i = 0; i < p.size(); i++) {
                xs[i] = p.get(i)[0];
                ys[i] = p.get(i)[1];
            }
            series.put(e.getKey(), new Charts.Series(e.getKey(), xs, ys));
        }
        if (series.isEmpty()) {
            throw new InputException(file + ": expected --metrics from those in the file (" + String.join(", ", available)
                    + "), found " + String.join(", ", metrics) + ", which " + (metrics.size() == 1 ? "occurs" : "occur")
                    + " in no record with " + X_FIELD);
        }
        return series;
    }

    static Path sibling(Path out, String metric) {
        String name = out.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String stem = dot > 0 ? name.substring(0, dot) : name;
        String ext = dot > 0 ? name.substring(dot) : ".png";
        return out.resolveSibling(stem + "-" + metric.replaceAll("[^A-Za-z0-9_.-]", "_") + ext);
    }

    private static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 77) + "...";
    }
}
