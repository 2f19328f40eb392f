package io.anneal.mup;

import ai.djl.Device;
import ai.djl.ndarray.types.DataType;
import io.anneal.api.InputException;
import io.anneal.api.cli.Charts;
import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.ModelOptions;
import io.anneal.toolkit.device.DeviceChoice;
import io.anneal.api.model.ObservableModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code anneal mup coord-check FILE.conf --out coord.png}: builds the pipeline's {@code model}
 * block at several widths (through the extension API: this plugin never names a model class),
 * trains a few steps with and without muP and plots the activation scales over width.
 */
public final class MupCommand implements CliCommand {
    static final String USAGE = "usage: anneal mup coord-check FILE.conf --out coord.png [--widths 32,64,128,256] "
            + "[--steps 5] [--lr 0.01] [--batch 2] [--seq 32] [--no-mup] "
            + "[--width-keys hidden-size=1,intermediate-size=3,mamba-d-ssm=2]";

    /**
     * Keys of a falcon-h1 model block that grow with width, as multiples of it, with fixed head
     * counts: the ratios of the Falcon-H1 benchmark model (hidden 1024, intermediate 3072, d_ssm
     * 2048). Head sizes follow when the block leaves head-dim and mamba-d-head at 0 (derived from
     * the head counts), so the head counts stay fixed and head sizes grow, as muP's 1/d attention
     * rule assumes.
     */
    static final String DEFAULT_WIDTH_KEYS = "hidden-size=1,intermediate-size=3,mamba-d-ssm=2";

    @Override
    public String name() {
        return "mup";
    }

    @Override
    public String summary() {
        return "muP tools: 'mup coord-check FILE.conf --out coord.png' plots activation scales over width";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws Exception {
        if (args.isEmpty() || args.contains("--help") || args.contains("-h")) {
            context.out().println(USAGE);
            return args.isEmpty() ? 2 : 0;
        }
        if (!args.get(0).equals("coord-check")) {
            throw new InputException("unknown mup subcommand '" + args.get(0) + "'; " + USAGE);
        }
        CommandArguments a = CommandArguments.parse("anneal mup coord-check", USAGE, args.subList(1, args.size()),
                Set.of("out", "widths", "steps", "lr", "batch", "seq", "width-keys"), Set.of("no-mup"));
        boolean standardOnly = a.isSet("no-mup");
        Path conf = context.workingDirectory().resolve(a.onePositional("the pipeline file (FILE.conf)"));
        Path out = context.workingDirectory().resolve(a.required("out"));
        int[] widths = parseWidths(a.value("widths", "32,64,128,256"));
        Map<String, Double> widthKeys = parseWidthKeys(a.value("width-keys", DEFAULT_WIDTH_KEYS));
        ConfigView root = context.loadConfig(conf);
        if (!root.has("model")) {
            throw new InputException(conf + ": no 'model' block to build at several widths");
        }
        ConfigView model = root.getConfig("model");
        // the check is small and runs on the CPU; say so, and on which libtorch
        context.out().println(DeviceChoice.choose("cpu", "coord-check").line());
        CoordinateCheck check = new CoordinateCheck(a.positiveInt("steps", 5), a.positiveInt("batch", 2),
                a.positiveInt("seq", 32), a.positiveNumber("lr", 0.01), 0);

        List<Charts.Series> series = new ArrayList<>();
        for (boolean mup : standardOnly ? new boolean[] {false} : new boolean[] {true, false}) {
            List<CoordinateCheck.WidthResult> results = check.run(widths,
                    w -> build(context, model, conf, widths[0], w, widthKeys, mup));
            String label = mup ? "muP" : "SP";
            report(context, label, results);
            List<String> sites = results.get(0).sites();
            for (int s = 0; s < sites.size(); s++) {
                double[] x = new double[results.size()];
                double[] y = new double[results.size()];
                for (int i = 0; i < results.size(); i++) {
                    x[i] = results.get(i).width();
                    double[][] scales = results.get(i).scales();
                    y[i] = scales[scales.length - 1][s];
                }
                series.add(new Charts.Series(label + " " + sites.get(s), x, y));
            }
        }
        context.charts().linePlot(out, "muP coordinate check: mean |activation| after " + a.positiveInt("steps", 5)
                + " Adam steps", "width", Charts.Axis.LOG, "mean |activation|", Charts.Axis.LOG, series);
        context.out().println("wrote " + out);
        return 0;
    }

    private static void report(CommandContext context, String label, List<CoordinateCheck.WidthResult> results) {
        List<String> sites = results.get(0).sites();
        context.out().println(label + ": mean |activation| per step (rows) and width (columns " + Arrays.toString(
                results.stream().mapToInt(CoordinateCheck.WidthResult::width).toArray()) + ")");
        for (int s = 0; s < sites.size(); s++) {
            context.out().printf("  %-10s drift (max/min over widths, last step) %.3f%n", sites.get(s),
                    CoordinateCheck.drift(results, s));
            for (int step = 0; step < results.get(0).scales().length; step++) {
                StringBuilder row = new StringBuilder("    step " + step + ":");
                for (CoordinateCheck.WidthResult r : results) {
                    row.append(String.format(" %.4g", r.scales()[step][s]));
                }
                context.out().println(row);
            }
        }
    }

    /** The model block at {@code width}: width keys scaled, the nested mup block told both widths. */
    static ObservableModel build(CommandContext context, ConfigView model, Path conf, int baseWidth, int width,
            Map<String, Double> widthKeys, boolean mup) {
        Map<String, Object> settings = new LinkedHashMap<>(model.unwrapped());
        String type = String.valueOf(settings.remove("type"));
        for (Map.Entry<String, Double> e : widthKeys.entrySet()) {
            if (!settings.containsKey(e.getKey()) && !model.has(e.getKey())) {
                throw new InputException(conf + ": --width-keys names '" + e.getKey() + "', which the model block "
                        + model.path() + " does not have");
            }
            double scaled = width * e.getValue();
            if (scaled != Math.rint(scaled) || scaled < 1) {
                throw new InputException("--width-keys: " + e.getKey() + " = " + width + " x " + e.getValue()
                        + " is not a positive integer");
            }
            settings.put(e.getKey(), (int) scaled);
        }
        Map<String, Object> mupBlock = new LinkedHashMap<>();
        if (settings.get("mup") instanceof Map<?, ?> existing) {
            existing.forEach((k, v) -> mupBlock.put(String.valueOf(k), v));
        } else {
            // multipliers written in the model block itself (config.json's fields) move into this
            // plugin's falcon-h1 mup block, which scales them with width
            mupBlock.put("type", "falcon-h1");
            for (String key : List.copyOf(settings.keySet())) {
                if (key.endsWith("-multiplier") || key.endsWith("-multipliers")) {
                    mupBlock.put(key, settings.remove(key));
                }
            }
        }
        mupBlock.put("base-width", baseWidth);
        mupBlock.put("width", width);
        mupBlock.put("enabled", mup);
        settings.put("mup", mupBlock);
        ModelArchitecture architecture = context.extensions().build(ModelArchitecture.class, type, settings,
                conf + " (coord-check at width " + width + ")");
        CausalLanguageModel built = architecture.initialize(new ModelOptions(Device.cpu(), DataType.FLOAT32, 0));
        if (built instanceof ObservableModel observable) {
            return observable;
        }
        built.close();
        throw new InputException(conf + ": model type '" + type + "' does not show its activations "
                + "(ObservableModel), so it cannot be coordinate-checked");
    }

    static int[] parseWidths(String text) {
        try {
            int[] widths = Arrays.stream(text.split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
            if (widths.length < 2 || Arrays.stream(widths).anyMatch(w -> w <= 0)) {
                throw new NumberFormatException();
            }
            return widths;
        } catch (NumberFormatException e) {
            throw new InputException("--widths must be two or more positive integers such as 32,64,128, found '" + text + "'");
        }
    }

    static Map<String, Double> parseWidthKeys(String text) {
        Map<String, Double> keys = new LinkedHashMap<>();
        for (String part : text.split(",")) {
            String[] kv = part.split("=");
            try {
                keys.put(kv[0].trim(), Double.parseDouble(kv[1].trim()));
            } catch (RuntimeException e) {
                throw new InputException("--width-keys must look like hidden-size=1,intermediate-size=2, found '" + part + "'");
            }
        }
        return keys;
    }

}
