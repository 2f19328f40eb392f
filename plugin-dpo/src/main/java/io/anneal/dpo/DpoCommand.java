package io.anneal.dpo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * {@code anneal dpo loss --type TYPE --beta B --input FILE.json}: the mean loss and TRL's metrics of
 * the pairs in FILE.json ({@code {"pairs": [{"policy_chosen": [...], "policy_rejected": [...],
 * "reference_chosen": [...], "reference_rejected": [...]}, ...]}}, per-token log-probs of the
 * response tokens), as one JSON object: how a user checks a loss against another trainer's logs.
 */
final class DpoCommand implements CliCommand {
    static final String USAGE = "usage: anneal dpo loss --input FILE.json [--type dpo|dpo_norm|ipo|hinge|robust|simpo] [--beta B]\n"
            + "                       [--label-smoothing EPS] [--gamma G] [--sft-weight W]\n"
            + "  FILE.json: {\"pairs\": [{\"policy_chosen\": [...], \"policy_rejected\": [...], \"reference_chosen\": [...],\n"
            + "  \"reference_rejected\": [...]}, ...]}, each array the per-token log-probs of the response tokens (simpo\n"
            + "  needs no reference arrays). Prints {\"loss\": mean over pairs, \"rewards/chosen\": ..., ...}. Defaults:\n"
            + "  type dpo, and each type's defaults of the plugin's reference.conf (beta 0.1; dpo_norm 5; simpo 2, gamma 0.5).";
    private static final Map<String, double[]> DEFAULTS = Map.of( // beta, label-smoothing, gamma
            "dpo", new double[] {0.1, 0, 0}, "dpo_norm", new double[] {5.0, 0, 0}, "ipo", new double[] {0.1, 0, 0},
            "hinge", new double[] {0.1, 0, 0}, "robust", new double[] {0.1, 0.1, 0}, "simpo", new double[] {2.0, 0, 0.5});

    @Override
    public String name() {
        return "dpo";
    }

    @Override
    public String summary() {
        return "preference-loss tools: 'dpo loss --type T --beta B --input FILE.json' prints the loss and TRL's metrics";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws IOException {
        if (args.isEmpty() || args.contains("--help") || args.contains("-h")) {
            context.out().println(USAGE);
            return args.isEmpty() ? 2 : 0;
        }
        if (!"loss".equals(args.get(0))) {
            throw new InputException("anneal dpo: unknown subcommand '" + args.get(0) + "', expected loss\n" + USAGE);
        }
        CommandArguments a = CommandArguments.parse("anneal dpo loss", USAGE, args.subList(1, args.size()),
                "type", "beta", "label-smoothing", "gamma", "sft-weight", "input");
        a.noPositionals();
        String typeName = a.choice("type", "dpo", "dpo", "dpo_norm", "ipo", "hinge", "robust", "simpo");
        PreferenceLoss.Type type = PreferenceLoss.Type.of(typeName);
        double[] d = DEFAULTS.get(typeName);
        double beta = a.positiveNumber("beta", d[0]);
        double eps = number(a, "label-smoothing", d[1]);
        if (!(eps >= 0 && eps < 0.5)) {
            throw a.error("--label-smoothing: expected a probability in [0, 0.5), found " + eps);
        }
        double gamma = number(a, "gamma", d[2]);
        double sftWeight = number(a, "sft-weight", 0);
        if (!(sftWeight >= 0)) {
            throw a.error("--sft-weight: expected a weight >= 0, found " + sftWeight);
        }
        Path file = context.workingDirectory().resolve(a.required("input"));
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new InputException(file + ": expected a JSON file {\"pairs\": [...]}, found unreadable input ("
                    + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        JsonNode pairs = root == null ? null : root.get("pairs");
        if (pairs == null || !pairs.isArray() || pairs.isEmpty()) {
            throw new InputException(file + ": expected {\"pairs\": [...]} with at least one pair");
        }
        PreferenceLoss loss = new PreferenceLoss(type, beta, eps, gamma, sftWeight);
        double lossSum = 0;
        double[] metrics = new double[DpoObjective.PAIR_METRICS.size()];
        for (int p = 0; p < pairs.size(); p++) {
            JsonNode pair = pairs.get(p);
            double[] pc = logps(file, pair, p, "policy_chosen");
            double[] pr = logps(file, pair, p, "policy_rejected");
            double[] rc = type.needsReference ? logps(file, pair, p, "reference_chosen") : new double[pc.length];
            double[] rr = type.needsReference ? logps(file, pair, p, "reference_rejected") : new double[pr.length];
            if (rc.length != pc.length || rr.length != pr.length) {
                throw new InputException(file + ": pairs[" + p + "]: expected reference arrays as long as the policy's (one log-prob per "
                        + "response token), found policy_chosen " + pc.length + " and reference_chosen " + rc.length
                        + ", policy_rejected " + pr.length + " and reference_rejected " + rr.length);
            }
            PreferenceLoss.PairValues v = loss.pair(sum(pc), sum(pr), sum(rc), sum(rr), pc.length, pr.length);
            lossSum += v.loss();
            metrics[0] += v.chosenReward();
            metrics[1] += v.rejectedReward();
            metrics[2] += v.chosenReward() > v.rejectedReward() ? 1 : 0;
            metrics[3] += v.chosenReward() - v.rejectedReward();
            metrics[4] += v.chosenLogp();
            metrics[5] += v.rejectedLogp();
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode out = json.createObjectNode();
        out.put("type", typeName);
        out.put("pairs", pairs.size());
        out.put("loss", lossSum / pairs.size());
        for (int m = 0; m < metrics.length; m++) {
            out.put(DpoObjective.PAIR_METRICS.get(m), metrics[m] / pairs.size());
        }
        context.out().println(json.writeValueAsString(out));
        return 0;
    }

    private static double number(CommandArguments a, String option, double otherwise) {
        String v = a.value(option, null);
        if (v == null) {
            return otherwise;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw a.error("--" + option + ": expected a number, found '" + v + "'");
        }
    }

    private static double[] logps(Path file, JsonNode pair, int index, String field) {
        JsonNode values = pair.get(field);
        if (values == null || !values.isArray() || values.isEmpty()) {
            throw new InputException(file + ": pairs[" + index + "]." + field + ": expected a non-empty array of log-probs, found "
                    + (values == null ? "nothing" : values.toString()));
        }
        double[] out = new double[values.size()];
        for (int i = 0; i < out.length; i++) {
            if (!values.get(i).isNumber()) {
                throw new InputException(file + ": pairs[" + index + "]." + field + "[" + i + "]: expected a number, found " + values.get(i));
            }
            out[i] = values.get(i).asDouble();
        }
        return out;
    }

    private static double sum(double[] values) {
        double s = 0;
        for (double v : values) {
            s += v;
        }
        return s;
    }
}
