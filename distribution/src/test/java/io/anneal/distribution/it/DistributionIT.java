package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.distribution.it.Distribution.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * End to end: a copy of the assembled distribution with the example plugin's jar dropped into
 * plugins/, driven through bin/anneal as a user would.
 */
class DistributionIT {
    @TempDir
    static Path tmp;
    static Distribution dist;
    static Path home;

    @BeforeAll
    static void installCopy() throws IOException {
        dist = Distribution.copyOfAssembled(tmp);
        home = dist.home;
        dist.addPlugin(Path.of(System.getProperty("anneal.example.jar")));
    }

    static Result anneal(String... args) throws Exception {
        return dist.run(args);
    }

    @Test
    void pluginsListsTheBundledPluginsCoreAndTheDroppedInExample() throws Exception {
        Result r = anneal("plugins");
        assertEquals(0, r.exit(), r.out());
        for (String id : List.of("core", "schedules", "mup", "ssm-hybrid", "dpo", "datamix")) {
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith(id + " ")), id + " missing in\n" + r.out());
        }
        assertTrue(r.out().contains("example-rsqrt 1.0.0  API [1.0,2.0)  " + home.resolve("plugins/anneal-plugin-rsqrt-1.0.0.jar")), r.out());
        assertTrue(r.out().contains("  lr-schedule: inverse-sqrt"), r.out());
        assertTrue(!r.out().contains("Refused"), r.out());
    }

    @Test
    void theContractAndTheToolkitShipOnceInLibAndNoPluginBundlesThem() throws Exception {
        // Plugins declare both provided: their layers read lib/'s copies (the bundled plugins all
        // require io.anneal.toolkit, so the listing above loading them all is the other half).
        for (String module : List.of("platform-api-", "platform-toolkit-")) {
            try (Stream<Path> lib = Files.list(home.resolve("lib"))) {
                assertEquals(1, lib.filter(f -> f.getFileName().toString().startsWith(module)).count(), module + "*.jar in lib/");
            }
            try (Stream<Path> plugins = Files.walk(home.resolve("plugins"))) {
                assertEquals(List.of(), plugins.filter(f -> f.getFileName().toString().startsWith(module)).toList(),
                        module + "*.jar bundled in plugins/");
            }
        }
    }

    @Test
    void runPrintsTheInverseSqrtScheduleOfTheExamplePlugin() throws Exception {
        Result r = anneal("run", "examples/rsqrt-schedule-table.conf", "--set", "stages[0].schedule.peak-lr=4e-4");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("stages[0].schedule.peak-lr = 4.0E-4  # --set stages[0].schedule.peak-lr=4e-4"), r.out());
        // Vaswani et al. 2017 eq. 3 in tokens: lr(t) = peak * min(t / w, sqrt(w / t)), w = 50M (the example file).
        double peak = 4e-4;
        double w = 50e6;
        long[] tokens = {0, 25_000_000, 50_000_000, 100_000_000, 200_000_000, 800_000_000};
        String[] labels = {"0", "25M", "50M", "100M", "200M", "800M"};
        List<String> lines = r.out().lines().toList();
        int header = lines.indexOf(lines.stream().filter(l -> l.startsWith("tokens ")).findFirst().orElseThrow());
        for (int i = 0; i < tokens.length; i++) {
            String[] cells = lines.get(header + 1 + i).trim().split("\\s+");
            assertEquals(labels[i], cells[0]);
            double expected = tokens[i] == 0 ? 0 : peak * Math.min(tokens[i] / w, Math.sqrt(w / tokens[i]));
            assertEquals(expected, Double.parseDouble(cells[1]), 1e-15 * peak, lines.get(header + 1 + i));
        }
        Path metrics = home.resolve("runs/rsqrt-table/1-rsqrt/metrics.jsonl");
        List<String> rows = Files.readAllLines(metrics);
        assertEquals(tokens.length, rows.size());
        assertTrue(rows.get(2).matches("\\{\"step\":2,\"time\":\"[0-9T:.-]+Z\",.*"), rows.get(2));
        assertEquals("{\"step\":2,\"num_tokens\":50000000,\"learning_rate\":4.0E-4}",
                rows.get(2).replaceFirst(",\"time\":\"[^\"]*\"", ""));
        assertTrue(!Files.exists(home.resolve("examples/runs")), "the run goes to the git-ignored runs/ at the root");
    }

    @Test
    void badInputExitsTwoWithoutAStackTrace() throws Exception {
        Files.writeString(home.resolve("typo.conf"), "pipeline.name = t\nstages = [ { type = schedule-table, "
                + "schedule { type = inverse-sqrt, peak-lr = 1e-4, warmpu = 1M } } ]\n");
        Result r = anneal("validate", "typo.conf");
        assertEquals(2, r.exit(), r.out());
        assertTrue(r.out().contains("typo.conf:2: stages[0].schedule.warmpu: expected a key of lr-schedule type 'inverse-sqrt'"
                + " (plugin example-rsqrt): peak-lr, type, warmup, found unknown key 'warmpu'; did you mean 'warmup'?"), r.out());
        assertTrue(!r.out().contains("\tat "), r.out());
        assertEquals(2, anneal("--plugins", "no-such-dir", "plugins").exit());
    }

    /** Every pipeline the distribution ships validates (the recipe's only problems are its placeholder paths, all of them). */
    @Test
    void shippedPipelinesValidate() throws Exception {
        for (String file : List.of("examples/tiny-sft.conf", "examples/gpu-small-sft.conf", "examples/gpu-small-dpo.conf",
                "examples/bench/falcon-h1-291m.conf", "examples/bench/falcon-h1-291m-mup-fused.conf",
                "examples/bench/falcon-h1-291m-fused-kept.conf", "examples/bench/falcon-h1-291m-fused-branch.conf",
                "examples/falcon-h1-coord-check.conf")) {
            Result r = anneal("validate", file);
            assertEquals(0, r.exit(), file + ":\n" + r.out());
        }
        // the kept scan's setting: shown by config, and a wrong value named with its file and line
        Result shown = anneal("config", "examples/bench/falcon-h1-291m-fused-kept.conf");
        assertEquals(0, shown.exit(), shown.out());
        assertTrue(shown.out().contains("model.ssd-recompute = false  #"), shown.out());
        Result branch = anneal("config", "examples/bench/falcon-h1-291m-fused-branch.conf");
        assertEquals(0, branch.exit(), branch.out());
        assertTrue(branch.out().contains("model.branch-stream = \"attention\"  #"), branch.out());
        Files.writeString(home.resolve("examples/bench/branch-typo.conf"),
                "include \"falcon-h1-291m-fused.conf\"\nmodel.branch-stream = both\n");
        Result branchTypo = anneal("validate", "examples/bench/branch-typo.conf");
        assertEquals(2, branchTypo.exit(), branchTypo.out());
        assertTrue(branchTypo.out().contains("branch-typo.conf:2: model.branch-stream: expected one of none, attention, mamba, "
                + "found \"both\""), branchTypo.out());
        Files.delete(home.resolve("examples/bench/branch-typo.conf"));
        Files.writeString(home.resolve("examples/bench/kept-typo.conf"),
                "include \"falcon-h1-291m-fused.conf\"\nmodel.ssd-recompute = maybe\n");
        Result typo = anneal("validate", "examples/bench/kept-typo.conf");
        assertEquals(2, typo.exit(), typo.out());
        assertTrue(typo.out().contains("kept-typo.conf:2: model.ssd-recompute: expected true or false, found \"maybe\""),
                typo.out());
        Files.delete(home.resolve("examples/bench/kept-typo.conf"));
        Result recipe = anneal("validate", "examples/falcon-h1-sft.conf");
        assertEquals(2, recipe.exit(), recipe.out());
        assertTrue(recipe.out().startsWith("anneal: 9 configuration problems:"), recipe.out());
        List<String> problems = recipe.out().lines().filter(l -> l.matches("\\s+\\d+\\. .*")).toList();
        assertEquals(List.of("stages[0].data.sources[0].path", "stages[0].data.sources[1].path", "stages[0].data.tokenizer",
                "stages[0].eval-data.sources[0].path", "stages[0].eval-data.tokenizer", "stages[0].init-from",
                "stages[1].data.sources[0].path", "stages[1].data.sources[1].path", "stages[1].data.tokenizer"),
                problems.stream().map(l -> l.split(": ")[1]).toList(), recipe.out());
        for (String problem : problems) {
            assertTrue(problem.contains(" /data/") || problem.contains(" /models/"), problem);
        }
    }

    /**
     * The SFT-then-DPO chain of examples/tiny-dpo.conf on the CPU (the tiny falcon-h1-recipe.conf):
     * the dpo stage (plugin dpo) starts from the SFT stage's final model, which is its reference too,
     * its log-probs computed once per pair and cached; it trains through the runtime's loop on
     * preference pairs, logs TRL's DPO metrics at every step and on the held-out pairs, and the
     * reward margin grows.
     */
    @Test
    void tinyDpoChainLogsTrlMetricsAndTheMarginGrows() throws Exception {
        long start = System.nanoTime();
        Result chain = dist.command("run", "examples/tiny-dpo.conf").timeout(java.time.Duration.ofMinutes(15)).run();
        String out = chain.out();
        assertEquals(0, chain.exit(), out);
        System.out.printf("tiny SFT-then-DPO chain: %.0f s%n", (System.nanoTime() - start) / 1e9);
        assertTrue(out.contains("dpo: starting from the previous stage's model " + home.resolve("runs/tiny-dpo/1-sft/final")), out);
        java.util.regex.Matcher cached = java.util.regex.Pattern.compile("dpo: dpo_norm\\(beta 5.0\\); reference log-probs of "
                + "([0-9]+) pairs in " + java.util.regex.Pattern.quote(home.resolve("runs/tiny-dpo/2-dpo/reference-logps") + "/")
                + "[0-9a-f]{16}\\.bin \\(\\1 computed now, 0 read from the cache, [0-9.]+ s\\); the reference model is not kept "
                + "in memory while training").matcher(out);
        assertTrue(cached.find(), out);
        assertTrue(Integer.parseInt(cached.group(1)) > 150, "the 150 training pairs and the held-out ones: " + cached.group(1));
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        List<com.fasterxml.jackson.databind.JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(home.resolve("runs/tiny-dpo/2-dpo/metrics.jsonl"))) {
            rows.add(json.readTree(line));
        }
        assertTrue(rows.size() >= 20, "steps logged: " + rows.size());
        // the batch in pairs, by hand: batch-pairs = 32, one pair per row of 128, 150 training pairs;
        // 6 epochs of 150 x 128 tokens = 115,200 tokens at 4,096 per step: 29 steps
        assertTrue(out.contains("batch: 32 pairs per step, one pair per row: 4 micro-batches of 8 x 128 tokens = 4,096 "
                + "tokens per step"), out);
        assertEquals(29, rows.size(), "steps: ceil(6 x 150 / 32)");
        for (com.fasterxml.jackson.databind.JsonNode row : rows) {
            long step = row.get("step").asLong();
            assertEquals(32 * step, row.get("num_pairs").asLong(), row.toString());
            assertEquals(32 * 128 * step, row.get("num_tokens").asLong(), row.toString());
            assertEquals(32.0 * step / 150, row.get("epoch").asDouble(), 1e-12, "epoch = pairs drawn / 150: " + row);
        }
        List<String> objectiveMetrics = List.of("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected");
        for (com.fasterxml.jackson.databind.JsonNode row : rows) {
            List<String> keys = new ArrayList<>(List.of("loss", "learning_rate", "grad_norm", "num_tokens"));
            keys.addAll(objectiveMetrics);
            for (String key : keys) {
                assertTrue(row.has(key) && Double.isFinite(row.get(key).asDouble()), key + " in " + row);
            }
        }
        assertEquals(0.0, rows.get(0).get("rewards/margins").asDouble(), 1e-6, "the first step's policy is the reference");
        double early = (rows.get(0).get("rewards/margins").asDouble() + rows.get(1).get("rewards/margins").asDouble()) / 2;
        int n = rows.size();
        double late = (rows.get(n - 1).get("rewards/margins").asDouble() + rows.get(n - 2).get("rewards/margins").asDouble()) / 2;
        assertTrue(late > early + 0.3, "rewards/margins grows: " + early + " -> " + late);
        assertTrue(rows.get(n - 1).get("rewards/accuracies").asDouble() > 0.5, rows.get(n - 1).toString());
        List<com.fasterxml.jackson.databind.JsonNode> evals = rows.stream().filter(r -> r.has("eval_rewards/margins")).toList();
        assertTrue(evals.size() >= 2, "evaluations on the held-out pairs: " + evals.size());
        for (com.fasterxml.jackson.databind.JsonNode eval : evals) {
            assertTrue(eval.has("eval_loss"), eval.toString());
            for (String name : objectiveMetrics) {
                assertTrue(eval.has("eval_" + name) && Double.isFinite(eval.get("eval_" + name).asDouble()), name + " in " + eval);
            }
        }
        assertTrue(evals.get(evals.size() - 1).get("eval_rewards/margins").asDouble() > evals.get(0).get("eval_rewards/margins").asDouble(),
                "held-out margins grow: " + evals);
        assertTrue(Files.isRegularFile(home.resolve("runs/tiny-dpo/2-dpo/final/model.safetensors")));
    }

    /**
     * The full-size DPO stage and the recipe: they validate but for the placeholder paths (each
     * named), and the recipe's DPO stage is falcon-h1-dpo.conf's but for init-from (none: the SFT
     * stage's final model).
     */
    @Test
    void falconH1DpoAndRecipeCarryTheSeedsDpoStage() throws Exception {
        Result dpo = anneal("validate", "examples/falcon-h1-dpo.conf");
        assertEquals(2, dpo.exit(), dpo.out());
        List<String> problems = dpo.out().lines().filter(l -> l.matches("\\s+\\d+\\. .*")).toList();
        assertEquals(List.of("stages[0].data.sources[0].path", "stages[0].data.sources[1].path", "stages[0].data.tokenizer",
                "stages[0].eval-data.sources[0].path", "stages[0].eval-data.tokenizer", "stages[0].init-from"),
                problems.stream().map(l -> l.split(": ")[1]).toList(), dpo.out());
        Result recipe = anneal("validate", "examples/falcon-h1-recipe.conf");
        assertEquals(2, recipe.exit(), recipe.out());
        problems = recipe.out().lines().filter(l -> l.matches("\\s+\\d+\\. .*")).toList();
        assertEquals(14, problems.size(), recipe.out());
        for (String problem : problems) {
            assertTrue(problem.contains(" /data/") || problem.contains(" /models/"), problem);
        }
        // the DPO stage of both files as written (includes resolved), but for the model's folder
        com.typesafe.config.Config dpoStage = stage("examples/falcon-h1-dpo.conf", 0);
        com.typesafe.config.Config recipeStage = stage("examples/falcon-h1-recipe.conf", 2);
        assertEquals("/models/Falcon-H1-1.5B-SFT", dpoStage.getString("init-from"));
        assertTrue(!recipeStage.hasPath("init-from"), "the recipe's DPO stage starts from the SFT stage's final model");
        assertEquals(withoutModelFolder(dpoStage), withoutModelFolder(recipeStage));
        // seed 000's DPO table
        assertEquals("dpo_norm", recipeStage.getString("objective.type"));
        assertEquals(5.0, recipeStage.getDouble("objective.beta"));
        assertEquals("cached", recipeStage.getString("objective.reference"));
        assertEquals("linear", recipeStage.getString("schedule.type"));
        assertEquals(5e-6, recipeStage.getDouble("schedule.peak-lr"));
        assertEquals(2.0, recipeStage.getDouble("schedule.total-epochs"));
        assertEquals(0.1, recipeStage.getDouble("schedule.warmup-ratio"));
        assertEquals(1.0, recipeStage.getDouble("schedule.stop-at-epochs"));
        assertEquals(0.9, recipeStage.getDouble("optimizer.beta1"));
        assertEquals(0.999, recipeStage.getDouble("optimizer.beta2"));
        assertEquals(0.0, recipeStage.getDouble("optimizer.weight-decay"));
        assertEquals(256, recipeStage.getInt("batch-pairs"), "seed 000: batch size 256 pairs");
        assertTrue(!recipeStage.hasPath("batch-tokens"), "the dpo stage's batch is in pairs");
        assertEquals(4096, recipeStage.getInt("sequence-length"));
        assertEquals(List.of("sft-16k", "sft-128k", "dpo"), com.typesafe.config.ConfigFactory.parseFile(
                home.resolve("examples/falcon-h1-recipe.conf").toFile()).resolve().getConfigList("stages").stream()
                .map(c -> c.getString("name")).toList());
    }

    /** Stage {@code index} of a shipped pipeline file, as written (includes and substitutions resolved). */
    private static com.typesafe.config.Config stage(String file, int index) {
        return com.typesafe.config.ConfigFactory.parseFile(home.resolve(file).toFile()).resolve()
                .getConfigList("stages").get(index);
    }

    /** The stage without init-from and the tokenizer paths (the SFT model's folder, or the base model's in the chain). */
    private static Object withoutModelFolder(com.typesafe.config.Config stage) {
        return stage.withoutPath("init-from").withoutPath("data.tokenizer").withoutPath("eval-data.tokenizer").root().unwrapped();
    }

    /**
     * Issue 13, bad input: an objective that does not fit its data is refused by validate naming the
     * stage; a bad preference pair fails the run naming file and line, or is skipped and counted.
     */
    @Test
    void objectivesRefuseDataThatDoesNotFitAndBadPairsAreNamedOrSkipped() throws Exception {
        Result dpoOnChat = anneal("validate", "examples/tiny-dpo.conf", "--set", "stages[1].data={type = mix, "
                + "tokenizer = \"examples/tokenizer/tokenizer.json\", sources = [{name = a, path = \"examples/data/arithmetic.jsonl\"}]}");
        assertEquals(2, dpoOnChat.exit(), dpoOnChat.out());
        assertTrue(dpoOnChat.out().contains("stages[1].data: expected data that fits the stage's objective dpo_norm(beta 5.0), "
                + "cached reference: preference pairs, found mix("), dpoOnChat.out());
        assertTrue(dpoOnChat.out().contains("which yields supervised chat rows (stage stages[1], 'dpo')"), dpoOnChat.out());
        Result sftOnPairs = anneal("validate", "examples/tiny-dpo.conf", "--set", "stages[0].data={type = preferences, "
                + "tokenizer = \"examples/tokenizer/tokenizer.json\", sources = [{name = p, path = \"examples/data/preferences-prompt.jsonl\"}]}");
        assertEquals(2, sftOnPairs.exit(), sftOnPairs.out());
        assertTrue(sftOnPairs.out().contains("stages[0].data: expected data that fits the stage's objective sft: supervised chat rows, "
                + "found preferences(1 source), which yields preference pairs (stage stages[0], 'sft')"), sftOnPairs.out());

        Path bad = home.resolve("bad-pairs.jsonl");
        List<String> lines = new ArrayList<>(Files.readAllLines(home.resolve("examples/data/preferences-prompt.jsonl")));
        int good = lines.size();
        lines.add("{\"prompt\": \"What is 2 + 2?\", \"chosen\": \"4\", \"rejected\": \"4\"}");
        lines.add("{\"prompt\": \"What is 2 + 3?\", \"chosen\": \"\", \"rejected\": \"6\"}");
        lines.add("{\"prompt\": \"" + "two plus two ".repeat(200) + "\", \"chosen\": \"4\", \"rejected\": \"5\"}");
        Files.write(bad, lines);
        // a DPO stage alone, from the tiny model's random initialisation, on the bundled pairs and the bad ones
        Files.writeString(home.resolve("dpo-only.conf"), """
                include "examples/tiny-sft.conf"
                pipeline { name = dpo-only, run-dir = "runs/dpo-only" }
                stages = [ {
                  type = dpo
                  sequence-length = 256
                  micro-batch-rows = 4
                  batch-pairs = 4
                  token-budget = "2048"
                  checkpoint-every = "0"
                  schedule { type = constant, peak-lr = 1e-4 }
                  optimizer { type = adamw }
                  data { type = preferences, tokenizer = "examples/tokenizer/tokenizer.json",
                         sources = [ { name = bad, path = "bad-pairs.jsonl" } ] }
                } ]
                """);
        Result failed = anneal("run", "--quiet", "dpo-only.conf");
        assertEquals(2, failed.exit(), failed.out());
        assertTrue(failed.out().contains(bad + ":" + (good + 1) + ": expected a chosen answer that differs from the rejected one, "
                + "found two identical answers (set on-error = skip to skip and count such records)"), failed.out());
        Result skipped = anneal("run", "--quiet", "dpo-only.conf", "stages[0].data.on-error=skip");
        assertEquals(0, skipped.exit(), skipped.out());
        assertTrue(skipped.out().contains("preference source bad (" + bad + "): " + good + " pairs, 3 skipped (first: " + bad + ":"
                + (good + 1) + ": "), skipped.out());
    }

    /**
     * A dpo stage's batch is counted in pairs: nonsense (none, negative, not whole micro-batches of
     * one pair per row, a batch in tokens) is refused by validate naming file, line and key, exit 2.
     */
    @Test
    void aDpoBatchInPairsRefusesNonsenseNamingFileLineAndKey() throws Exception {
        String stage = """
                include "examples/tiny-sft.conf"
                pipeline { name = dpo-batch, run-dir = "runs/dpo-batch" }
                stages = [ {
                  type = dpo
                  sequence-length = 128
                  micro-batch-rows = 8
                  batch-pairs = %s
                  schedule { type = constant, peak-lr = 1e-4 }
                  token-budget = "4096"
                  optimizer { type = adamw }
                  data { type = preferences, tokenizer = "examples/tokenizer/tokenizer.json",
                         sources = [ { name = p, path = "examples/data/preferences-prompt.jsonl" } ] }
                } ]
                """;
        Files.writeString(home.resolve("dpo-batch.conf"), stage.formatted("0"));
        assertRefused(anneal("validate", "dpo-batch.conf"), "dpo-batch.conf:7: stages[0].batch-pairs: expected a positive number "
                + "of preference pairs per step, such as 256 (seed 000), found 0");
        Files.writeString(home.resolve("dpo-batch.conf"), stage.formatted("-256"));
        assertRefused(anneal("validate", "dpo-batch.conf"), "dpo-batch.conf:7: stages[0].batch-pairs: expected a positive number "
                + "of preference pairs per step, such as 256 (seed 000), found -256");
        Files.writeString(home.resolve("dpo-batch.conf"), stage.formatted("30"));
        assertRefused(anneal("validate", "dpo-batch.conf"), "dpo-batch.conf:7: stages[0].batch-pairs: expected a multiple of "
                + "micro-batch-rows (8): a row holds one pair, so a micro-batch holds 8 pairs and a step whole micro-batches "
                + "(nearest: 24 or 32), found 30");
        Files.writeString(home.resolve("dpo-batch.conf"), stage.formatted("32\n  batch-tokens = 1M"));
        // a batch in tokens is no key of a dpo stage (its keys, batch-pairs among them, are listed)
        assertRefused(anneal("validate", "dpo-batch.conf"), "dpo-batch.conf:8: stages[0].batch-tokens: expected a key of stage "
                + "type 'dpo' (plugin dpo): batch-pairs, checkpoint-every,");
        assertRefused(anneal("validate", "dpo-batch.conf"), "found unknown key 'batch-tokens'");
        Files.writeString(home.resolve("dpo-batch.conf"), stage.formatted("32"));
        Result valid = anneal("validate", "dpo-batch.conf");
        assertEquals(0, valid.exit(), valid.out());
        // the data plan counts the pairs of an epoch, one per row: tiny-dpo.conf's epoch-tokens = 150 x 128
        Result plan = anneal("data", "plan", "examples/tiny-dpo.conf");
        assertEquals(0, plan.exit(), plan.out());
        assertTrue(plan.out().contains("one epoch: 150 pairs, one per row of 128 tokens: epoch-tokens = 19200 (for a schedule in "
                + "epochs: total-epochs, stop-at-epochs; batch-pairs = B gives ceil(150 / B) steps per epoch)"), plan.out());
        assertEquals(19200, stage("examples/tiny-dpo.conf", 1).getLong("schedule.epoch-tokens"));
    }

    /**
     * The DPO reference cache filled by ONNX Runtime needs plugin onnx, which the default distribution
     * does not hold (its own archive): validate names the missing plugin, exit 2.
     */
    @Test
    void anOnnxReferenceScorerWithoutPluginOnnxNamesTheMissingPlugin() throws Exception {
        Result r = anneal("validate", "examples/tiny-dpo.conf", "--set", "stages[1].objective.reference-scorer={type = onnx}");
        assertEquals(2, r.exit(), r.out());
        assertTrue(r.out().contains("stages[1].objective.reference-scorer.type: expected a sequence-scorer type (known: none are "
                + "loaded), found unknown type 'onnx'; plugin 'onnx' provides it and is not loaded"), r.out());
    }

    /** One refusal line, exit 2, no stack trace and no Java class name. */
    static void assertRefused(Result r, String message) {
        assertEquals(2, r.exit(), r.out());
        assertTrue(r.out().contains(message), r.out());
        assertTrue(!r.out().contains("\tat ") && !r.out().contains("Exception") && !r.out().contains("Error"), r.out());
    }

    @Test
    void validateChecksIntegerKeysAndSizesNamingTheKey() throws Exception {
        assertRefused(anneal("validate", "examples/tiny-sft.conf", "stages[0].keep-last=2.5"),
                "anneal: --set stages[0].keep-last=2.5: stages[0].keep-last: expected a whole number that fits in 32 bits, found 2.5");
        assertRefused(anneal("validate", "examples/tiny-sft.conf", "--set", "model.hidden-size=1e9"),
                "model.hidden-size: expected a size whose weight matrices fit in one array each, found 1e9, so "
                        + "model.embed_tokens.weight would hold 640 x 1000000000 elements");
    }

    /**
     * The model's vocab-size must cover each stage's tokenizer, added tokens included (the bundled
     * tokenizer: ids 0..629, so 630; with one added token at id 700: 701), checked by validate before anything runs.
     */
    @Test
    void validateChecksTheModelsVocabularyAgainstEachTokenizerWithItsAddedTokens() throws Exception {
        Result small = anneal("validate", "examples/tiny-sft.conf", "model.vocab-size=600");
        assertRefused(small, "--set model.vocab-size=600: model.vocab-size: expected a vocabulary of at least 630 tokens, the size of "
                + "the tokenizer of stages[0].data.tokenizer = tokenizer/tokenizer.json (" + home.resolve("examples/tiny-sft.conf") + ":");
        assertTrue(small.out().contains("found 600 tokens, smaller than the tokenizer's 630"), small.out());
        assertTrue(small.out().contains("stages[0].eval-data.tokenizer = tokenizer/tokenizer.json"), "every stage's data: " + small.out());

        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        com.fasterxml.jackson.databind.node.ObjectNode tokenizer = (com.fasterxml.jackson.databind.node.ObjectNode)
                json.readTree(home.resolve("examples/tokenizer/tokenizer.json").toFile());
        com.fasterxml.jackson.databind.node.ObjectNode added = ((com.fasterxml.jackson.databind.node.ArrayNode) tokenizer.get("added_tokens"))
                .addObject();
        added.put("id", 700).put("content", "<|tool_call|>").put("single_word", false).put("lstrip", false).put("rstrip", false)
                .put("normalized", false).put("special", true);
        Path extended = home.resolve("tokenizer-700.json");
        json.writeValue(extended.toFile(), tokenizer);
        Result withAdded = anneal("validate", "examples/tiny-sft.conf", "stages[0].data.tokenizer=" + extended);
        // the key with the file and line that set it, and the tokenizer's key with where it was set
        assertRefused(withAdded, home.resolve("examples/tiny-sft.conf") + ":21: model.vocab-size: expected a vocabulary of at least "
                + "701 tokens, the size of the tokenizer of stages[0].data.tokenizer = " + extended + " (--set");
        assertTrue(withAdded.out().contains("found 640 tokens, smaller than the tokenizer's 701"), withAdded.out());
    }

    @Test
    void overridesReachListItemsInsideAStageWithSetOrBare() throws Exception {
        assertEquals(0, anneal("validate", "examples/tiny-sft.conf", "--set", "stages[0].data.sources[1].path=examples/data/facts.jsonl",
                "stages.0.eval-data.sources.3.weight=0.5").exit());
        assertRefused(anneal("validate", "examples/tiny-sft.conf", "stages[0].data.sources[1].path=nope.jsonl"),
                "anneal: --set stages[0].data.sources[1].path=nope.jsonl: stages[0].data.sources[1].path: expected an existing JSONL file");
        assertRefused(anneal("validate", "examples/tiny-sft.conf", "--set", "stages[99999999999999].keep-last=1"),
                "anneal: --set stages[99999999999999].keep-last=1: stages has no element at index 99999999999999 (it has 1, indices 0 to 0)");
        assertRefused(anneal("validate", "examples/tiny-sft.conf", "stages.0.data.sources.9.path=x"),
                "stages[0].data.sources has no element at index 9 (it has 5, indices 0 to 4)");
    }

    @Test
    void nestingTooDeepIsOneLineOfBadInput() throws Exception {
        // refused by the loader's scan before typesafe-config parses, naming the line (issue 15, fuzzing)
        java.util.Map<String, String> cases = new java.util.LinkedHashMap<>();
        cases.put("a = " + "{ b = ".repeat(20_000) + "1" + " }".repeat(20_000),
                "deep.conf:1: expected blocks, lists and += nested at most a few hundred deep (256), found nesting too deep to read");
        cases.put("a = " + "[".repeat(20_000) + "]".repeat(20_000),
                "deep.conf:1: expected blocks, lists and += nested at most a few hundred deep (256), found nesting too deep to read");
        cases.put("a = []\n" + "a += 1\n".repeat(1_000),
                "deep.conf:66: expected at most 64 += in a file (each nests one more concatenation to resolve), found more");
        for (java.util.Map.Entry<String, String> c : cases.entrySet()) {
            Files.writeString(home.resolve("deep.conf"), c.getKey());
            Result r = anneal("validate", "deep.conf");
            assertRefused(r, c.getValue());
            assertEquals(1, r.out().lines().count(), r.out());
        }
    }

    @Test
    void scheduleCommandsReadScheduleFilesAndEachStageOfAPipeline() throws Exception {
        Files.writeString(home.resolve("lr.conf"), "schedule { type = wsd }\n");
        Result bare = anneal("schedule", "values", "lr.conf", "--at", "25M,3.05G");
        assertEquals(0, bare.exit(), bare.out());
        assertEquals(List.of("25M 6.40000000000e-05", "3.05G 1.60000000000e-05"), bare.out().lines().toList());
        Files.writeString(home.resolve("two.conf"), "schedules { wsd { type = wsd }, flat { type = constant, peak-lr = 1e-4 } }\n");
        Result two = anneal("schedule", "values", "two.conf", "--at", "3.05G");
        assertEquals(List.of("flat 3.05G 0.000100000000000", "wsd 3.05G 1.60000000000e-05"), two.out().lines().toList(), two.out());

        // The recipe's pipeline, whose data paths do not exist here: its schedules are still read, by stage name.
        Result recipe = anneal("schedule", "values", "examples/falcon-h1-sft.conf", "--at", "25M,3.05G");
        assertEquals(0, recipe.exit(), recipe.out());
        assertEquals(List.of("sft-16k 25M 6.40000000000e-05", "sft-16k 3.05G 1.60000000000e-05",
                "sft-128k 25M 1.60000000000e-05", "sft-128k 3.05G 1.60000000000e-05"), recipe.out().lines().toList());
        Result one = anneal("schedule", "bound", "examples/falcon-h1-sft.conf", "--stage", "sft-16k");
        assertEquals(0, one.exit(), one.out());
        assertTrue(one.out().contains("sft-16k: 3050 steps"), one.out());
        assertRefused(anneal("schedule", "values", "examples/falcon-h1-sft.conf", "--at", "1M", "--stage", "dpo"),
                "--stage dpo: expected one of sft-16k, sft-128k, found no schedule of that name");

        Result plot = anneal("schedule", "plot", "examples/tiny-sft.conf", "--out", "lr.png");
        assertEquals(0, plot.exit(), plot.out());
        assertTrue(Files.size(home.resolve("lr.png")) > 0);
        // A stage's schedule from the dropped-in example plugin.
        Result rsqrt = anneal("schedule", "values", "examples/rsqrt-schedule-table.conf", "--at", "50M");
        assertEquals(List.of("50M 0.000300000000000"), rsqrt.out().lines().toList(), rsqrt.out());
    }

    @Test
    void dataPlanUsesTheStagesBudget() throws Exception {
        Result r = anneal("data", "plan", "examples/tiny-sft.conf");
        assertEquals(0, r.exit(), r.out());
        // tiny-sft's schedule ends at 20K + 380K + 200K = 600K tokens; its eval-data is read 8192 tokens at a time
        assertEquals(List.of("budget 600000 tokens", "budget 8192 tokens"),
                r.out().lines().filter(l -> l.startsWith("budget ")).toList(), r.out());
        List<String> arithmetic = r.out().lines().filter(l -> l.startsWith("arithmetic ")).toList();
        double epochs = Double.parseDouble(arithmetic.get(0).trim().split("\\s+")[7]);
        assertTrue(epochs > 1, arithmetic.get(0));
    }

    /**
     * Three commands started together on one data set without caches all build the same token caches
     * (as several runs launched at once on one data file do): each writer has a temporary file of
     * its own, so none fails on another's, and no temporary file is left.
     */
    @Test
    void commandsStartedTogetherBuildOneTokenCache() throws Exception {
        Path examples = home.resolve("together");
        Distribution.copyTree(home.resolve("examples"), examples);
        try (Stream<Path> files = Files.walk(examples)) {
            for (Path f : files.filter(f -> isCacheFile(f.getFileName().toString())).toList()) {
                Files.delete(f);
            }
        }
        List<java.util.concurrent.Future<Result>> started = new ArrayList<>();
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(3);
        try {
            for (int i = 0; i < 3; i++) {
                started.add(pool.submit(() -> anneal("data", "plan", "together/tiny-sft.conf")));
            }
            List<String> plans = new ArrayList<>();
            for (java.util.concurrent.Future<Result> f : started) {
                Result r = f.get();
                assertEquals(0, r.exit(), r.out());
                plans.add(r.out().lines().filter(l -> l.startsWith("budget ") || l.startsWith("arithmetic ")).toList().toString());
            }
            assertEquals(1, plans.stream().distinct().count(), "the three plans differ: " + plans);
        } finally {
            pool.shutdownNow();
        }
        try (Stream<Path> files = Files.walk(examples)) {
            List<String> names = files.map(f -> f.getFileName().toString()).toList();
            assertTrue(names.contains("units.jsonl.anneal-tokens"), names.toString());
            assertTrue(names.stream().noneMatch(n -> n.endsWith(".tmp")), "temporary files left: " + names);
        }
    }

    private static boolean isCacheFile(String name) {
        return name.endsWith(".anneal-index") || name.endsWith(".anneal-tokens") || name.endsWith(".tmp");
    }

    @Test
    void sftWithTheTokenizersOwnChatTemplate() throws Exception {
        // examples/tokenizer-chat-template: the bundled tokenizer with a BOS and an EOS, and the Falcon-H1
        // instruct template as chat_template.jinja; template = auto renders every record with it.
        Result r = anneal("run", "examples/tiny-sft.conf", "pipeline.run-dir=auto-template",
                "stages[0].data.template=auto", "stages[0].data.tokenizer=examples/tokenizer-chat-template/tokenizer.json",
                "stages[0].eval-data.template=auto", "stages[0].eval-data.tokenizer=examples/tokenizer-chat-template/tokenizer.json",
                "stages[0].schedule.warmup=4K", "stages[0].schedule.stable=8K", "stages[0].schedule.decay=4K",
                "stages[0].eval-every=8K", "stages[0].checkpoint-every=16K");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("template=auto ("), r.out());
        assertTrue(r.out().contains("chat_template.jinja"), r.out());
        assertTrue(!r.out().contains("Exception"), r.out());
        // final/ is a folder transformers' AutoTokenizer loads: the tokenizer, and the template training rendered
        Path finalDir;
        try (Stream<Path> found = Files.walk(home)) {
            finalDir = found.filter(f -> f.endsWith("final") && f.toString().contains("auto-template")).findFirst().orElseThrow();
        }
        String template = Files.readString(home.resolve("examples/tokenizer-chat-template/chat_template.jinja"));
        assertTrue(Files.isRegularFile(finalDir.resolve("tokenizer.json")), finalDir.toString());
        assertEquals(template, new com.fasterxml.jackson.databind.ObjectMapper().readTree(finalDir.resolve("tokenizer_config.json").toFile())
                .get("chat_template").asText());
        assertEquals(template, Files.readString(finalDir.resolve("chat_template.jinja")));
    }

    @Test
    void aDivergedRunSaysWhatHappenedWithoutAClassName() throws Exception {
        Result r = anneal("run", "examples/tiny-sft.conf", "stages[0].schedule.peak-lr=1e6", "pipeline.run-dir=diverged");
        assertEquals(3, r.exit(), r.out()); // exit 3: training stopped on non-finite values (README)
        assertTrue(r.out().contains("\nanneal: sft: the loss is NaN at step "), r.out());
        assertTrue(!r.out().contains("Exception"), r.out());
    }

    @Test
    void plotListsTheMetricsTheFileHas() throws Exception {
        Files.writeString(home.resolve("m.jsonl"), "{\"step\":1,\"num_tokens\":4096,\"loss\":6.5,\"learning_rate\":0.001}\n");
        assertRefused(anneal("plot", "m.jsonl", "--out", "m.png", "--metrics", "los"),
                "m.jsonl: expected --metrics from those in the file (learning_rate, loss, step), found los");
        assertEquals(0, anneal("plot", "m.jsonl", "--out", "m.png", "--metrics", "loss").exit());
    }

    @Test
    void envNamesLibtorchTheDeviceAndThePlugins() throws Exception {
        Result r = anneal("env");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("\nlibtorch 2.7.1 (cpu) from "), r.out());
        assertTrue(r.out().contains("device cpu (auto: "), r.out());
        assertTrue(r.out().contains("\n  ssm-hybrid 0.1.0-SNAPSHOT "), r.out());
        assertTrue(r.out().contains("\nPYTORCH_LIBRARY_PATH="), r.out());
    }

    @Test
    void launcherSetsCublasAllocatorAndOpenMpDefaultsUnlessTheEnvironmentSaysOtherwise() throws Exception {
        // bin/anneal's defaults, as the JVM (and so libtorch) sees them: anneal env prints its environment
        Result defaults = dist.command("env").withoutEnv("CUBLAS_WORKSPACE_CONFIG").withoutEnv("OMP_WAIT_POLICY")
                .withoutEnv("PYTORCH_CUDA_ALLOC_CONF").run();
        assertEquals(0, defaults.exit(), defaults.out());
        assertTrue(defaults.out().contains("\nCUBLAS_WORKSPACE_CONFIG=:0:0\n"), defaults.out());
        assertTrue(defaults.out().contains("\nOMP_WAIT_POLICY=PASSIVE\n"), defaults.out());
        assertTrue(defaults.out().contains("\nPYTORCH_CUDA_ALLOC_CONF=expandable_segments:True\n"), defaults.out());
        Result own = dist.command("env").env("CUBLAS_WORKSPACE_CONFIG", ":4096:8").env("OMP_WAIT_POLICY", "ACTIVE")
                .env("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:512").run();
        assertEquals(0, own.exit(), own.out());
        assertTrue(own.out().contains("\nCUBLAS_WORKSPACE_CONFIG=:4096:8\n"), own.out());
        assertTrue(own.out().contains("\nOMP_WAIT_POLICY=ACTIVE\n"), own.out());
        assertTrue(own.out().contains("\nPYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:512\n"), own.out());
    }

    @Test
    void torchOptionRefusesAFolderWithoutLibtorchOrWithAnotherVersionAndUsesAMatchingOne() throws Exception {
        assertRefused(anneal("--torch", tmp.resolve("nothing-here").toString(), "env"),
                "anneal: --torch " + tmp.resolve("nothing-here") + " holds no libtorch (expected ");
        // a torch folder made of the bundled CPU libtorch (DJL unpacked it for the test above) and a version.py
        Path cache = libtorchCache();
        Path torch = Files.createDirectories(tmp.resolve("torch/lib"));
        try (var libraries = Files.list(cache)) {
            for (Path library : libraries.filter(f -> f.getFileName().toString().contains(".so")).toList()) {
                Files.createSymbolicLink(torch.resolve(library.getFileName()), library);
            }
        }
        Files.writeString(tmp.resolve("torch/version.py"), "__version__ = '2.11.0+cu130'\n");
        assertRefused(anneal("--torch", tmp.resolve("torch").toString(), "env"),
                "is torch 2.11.0+cu130, but DJL 0.36.0's JNI is built for torch 2.7.1");
        Files.writeString(tmp.resolve("torch/version.py"), "__version__ = '2.7.1+cpu'\n");
        Result r = anneal("env", "--torch=" + tmp.resolve("torch"));
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("\nlibtorch 2.7.1 (cpu) from " + torch), r.out());
        assertTrue(r.out().contains("\nPYTORCH_LIBRARY_PATH=" + torch + "\n"), r.out());
    }

    @Test
    void logitsScoresAShippedCheckpointAndSaysOnWhichLibtorch() throws Exception {
        // the transformers fixture of the hybrid plugin's tests: its logits were made by transformers
        Path fixture = Path.of("..", "plugin-ssm-hybrid/src/test/resources/fixtures/falcon-h1/mup-untied")
                .toAbsolutePath().normalize();
        Result r = anneal("logits", "--checkpoint", fixture.toString(), "--input", fixture.resolve("input.json").toString(),
                "--output", "logits.f32", "--device", "auto");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("torch: DJL 0.36.0 PyTorch engine, libtorch 2.7.1 (cpu)"), r.out());
        assertTrue(r.out().contains("; device cpu (auto: "), r.out());
        // --kernels auto on the CPU: the reference layers, said in one line
        assertTrue(r.out().contains("kernels: reference (the fused operators are CUDA kernels and the model is on the cpu"),
                r.out());
        java.nio.FloatBuffer expected = java.nio.ByteBuffer.wrap(Files.readAllBytes(fixture.resolve("logits.f32")))
                .order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        java.nio.FloatBuffer actual = java.nio.ByteBuffer.wrap(Files.readAllBytes(home.resolve("logits.f32")))
                .order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        assertEquals(expected.remaining(), actual.remaining());
        double worst = 0;
        double scale = 0;
        for (int i = 0; i < expected.remaining(); i++) {
            worst = Math.max(worst, Math.abs(expected.get(i) - actual.get(i)));
            scale = Math.max(scale, Math.abs(expected.get(i)));
        }
        assertTrue(worst <= 1e-5 * scale, "largest difference from transformers' logits " + worst + " of " + scale);
        assertRefused(anneal("logits", "--checkpoint", fixture.toString(), "--input", fixture.resolve("input.json").toString(),
                "--output", "x.f32", "--device", "tpu"), "--device");
        assertRefused(anneal("logits", "--checkpoint", fixture.toString(), "--input", fixture.resolve("input.json").toString(),
                "--output", "x.f32", "--kernels", "fused"), "--kernels = fused, but the fused operators are CUDA kernels");
        assertTrue(!Files.exists(home.resolve("x.f32")), "nothing written when refused");
        assertRefused(anneal("logits", "--checkpoint", fixture.toString(), "--input", fixture.resolve("input.json").toString(),
                "--output", "x.f32", "--kernels", "fast"), "--kernels: expected one of auto, fused, reference, found 'fast'");
        assertRefused(anneal("logits", "--engine", "onnx", "--checkpoint", fixture.toString(), "--input",
                fixture.resolve("input.json").toString(), "--output", "x.f32", "--kernels", "reference"),
                "--kernels belongs to --engine djl");
    }

    @Test
    void coordCheckPlotsTheShippedExample() throws Exception {
        Result r = anneal("mup", "coord-check", "examples/falcon-h1-coord-check.conf", "--out", "coord.png",
                "--widths", "32,64", "--steps", "2");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("torch: DJL 0.36.0 PyTorch engine, libtorch 2.7.1 (cpu)"), r.out());
        assertTrue(Files.size(home.resolve("coord.png")) > 1000, r.out());
    }

    @Test
    void dpoLossOfOnePairIsTheHandValue() throws Exception {
        // chosen log-ratio (-1-1) - (-2-1) = 1, rejected -3 - (-2) = -1; sigmoid DPO with beta 0.1:
        // -log sigmoid(0.1 * (1 - (-1))) = log(1 + e^-0.2) = 0.5981388693815918
        Files.writeString(home.resolve("pairs.json"), "{\"pairs\": [{\"policy_chosen\": [-1, -1], \"policy_rejected\": [-3], "
                + "\"reference_chosen\": [-2, -1], \"reference_rejected\": [-2]}]}");
        Result r = anneal("dpo", "loss", "--input", "pairs.json", "--type", "dpo", "--beta", "0.1");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("\"loss\":0.598138869381591"), r.out());
        assertTrue(r.out().contains("\"rewards/chosen\":0.1,\"rewards/rejected\":-0.1,\"rewards/accuracies\":1.0,"
                + "\"rewards/margins\":0.2"), r.out());
        Files.writeString(home.resolve("uneven.json"), "{\"pairs\": [{\"policy_chosen\": [-1, -1], \"policy_rejected\": [-3], "
                + "\"reference_chosen\": [-2], \"reference_rejected\": [-2]}]}");
        assertEquals(2, anneal("dpo", "loss", "--input", "uneven.json").exit());
    }

    /** Where DJL unpacked the bundled CPU libtorch (DJL_CACHE_DIR, else ~/.djl.ai). */
    private static Path libtorchCache() throws Exception {
        assertEquals(0, anneal("env").exit());
        String configured = System.getenv("DJL_CACHE_DIR");
        Path root = (configured != null ? Path.of(configured) : Path.of(System.getProperty("user.home"), ".djl.ai"))
                .resolve("pytorch");
        try (var folders = Files.list(root)) {
            return folders.filter(f -> f.getFileName().toString().matches("2\\.7\\.1-.*cpu-linux-x86_64")
                    && Files.exists(f.resolve("libtorch.so"))).findFirst().orElseThrow();
        }
    }
}
