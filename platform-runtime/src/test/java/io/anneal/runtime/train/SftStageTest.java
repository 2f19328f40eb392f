package io.anneal.runtime.train;

import io.anneal.api.InputException;
import io.anneal.api.model.ModelOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SftStageTest {

    private static TestStageContext run(SftFixture fixture, Path dir, TinyLanguageModel.Architecture architecture,
                                        boolean resume, long crashAtStep) throws Exception {
        TestStageContext context = new TestStageContext(dir, architecture, resume);
        context.crashAtStep = crashAtStep;
        fixture.stage().run(context);
        return context;
    }

    private static List<Double> column(List<Map<String, Object>> records, String key) {
        List<Double> out = new ArrayList<>();
        for (Map<String, Object> r : records) {
            out.add(((Number) r.get(key)).doubleValue());
        }
        return out;
    }

    private static float[][] finalWeights(TestStageContext context, TinyLanguageModel.Architecture architecture) {
        try (TinyLanguageModel m = (TinyLanguageModel) architecture.load(context.published, ModelOptions.cpu())) {
            return new float[][] {m.weights(0), m.weights(1)};
        }
    }

    @Test
    void lossFallsAndMetricsFollowTrlNames(@TempDir Path dir) throws Exception {
        SftFixture fixture = new SftFixture().set("token-budget", "360");
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext context = run(fixture, dir, architecture, false, -1);
        List<Map<String, Object>> steps = context.steps();
        assertEquals(30, steps.size(), "360 tokens / 12 tokens per step");
        Map<String, Object> first = steps.get(0);
        for (String key : List.of("loss", "learning_rate", "grad_norm", "num_tokens", "mean_token_accuracy",
                "tokens_per_second", "loss_scale", "skipped_steps", "epoch/chat", "epoch", "entropy")) {
            assertTrue(first.containsKey(key), "metric " + key);
        }
        assertFalse(first.containsKey("entropy/positions"), "the entropy's denominator is not a metric");
        // TRL's epoch, the whole data's: 2 rows per step of one 9-row source, so 2 * step / 9 at every step
        for (int i = 0; i < steps.size(); i++) {
            assertEquals(2.0 * (i + 1) / 9, column(steps, "epoch").get(i), 1e-12, "epoch at step " + (i + 1));
        }
        // an entropy in nats lies in (0, ln V]: ln 11 = 2.3978952727983707
        for (double h : column(steps, "entropy")) {
            assertTrue(h > 0 && h <= 2.3978952727983707 + 1e-6, "entropy " + h);
        }
        // the LR is the schedule's at the tokens seen BEFORE the step: 0.5 * (1 - 0.9 * 12 / 72) at step 2
        assertEquals(0.5, column(steps, "learning_rate").get(0), 0);
        assertEquals(0.5 * (1 - 0.9 * 12 / 72.0), column(steps, "learning_rate").get(1), 1e-15);
        assertEquals(12.0, column(steps, "num_tokens").get(0));
        assertEquals(1.0, column(steps, "loss_scale").get(0), "float32 runs have no loss scale");
        // 2 rows per step from a list of 9 rows: 30 steps = 60 rows = 6.67 epochs
        assertEquals(60 / 9.0, column(steps, "epoch/chat").get(29), 1e-12);
        double early = column(steps, "loss").subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double late = column(steps, "loss").subList(25, 30).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertTrue(late < early - 0.2, "loss falls: first five steps " + early + ", last five " + late);
        assertEquals(dir.resolve("final"), context.published);
        assertTrue(context.console().contains("batch: 2 micro-batches of 1 x 6 tokens = 12 tokens per step (exactly)"),
                context.console());
    }

    @Test
    void resumeAfterACrashIsBitExact(@TempDir Path dir) throws Exception {
        // uninterrupted: 6 steps
        TinyLanguageModel.Architecture a = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext straight = run(new SftFixture(), dir.resolve("straight"), a, false, -1);

        // interrupted: the process "dies" while logging step 5 (checkpoints were written at steps 2 and 4)
        TinyLanguageModel.Architecture b = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext crashed = new TestStageContext(dir.resolve("resumed"), b, false);
        crashed.crashAtStep = 5;
        assertThrows(IllegalStateException.class, () -> new SftFixture().stage().run(crashed));
        assertTrue(Files.exists(dir.resolve("resumed/checkpoints/step-000004/COMPLETE")));
        TestStageContext resumed = run(new SftFixture(), dir.resolve("resumed"), b, true, -1);
        assertTrue(resumed.console().contains("resuming from"), resumed.console());

        List<Map<String, Object>> joined = new ArrayList<>(crashed.steps());
        joined.addAll(resumed.steps());
        assertEquals(6, joined.size());
        assertEquals(column(straight.steps(), "step"), column(joined, "step"));
        for (String key : List.of("loss", "grad_norm", "learning_rate", "num_tokens", "mean_token_accuracy", "epoch/chat")) {
            assertEquals(column(straight.steps(), key), column(joined, key), key + " per step, exactly");
        }
        float[][] expected = finalWeights(straight, a);
        float[][] actual = finalWeights(resumed, b);
        assertArrayEquals(expected[0], actual[0]);
        assertArrayEquals(expected[1], actual[1]);
    }

    @Test
    void float16LossScaleBacksOffOnAnInfiniteGradientAndGrowsAfterTheInterval(@TempDir Path dir) throws Exception {
        SftFixture fixture = new SftFixture().set("precision", "float16")
                .setLossScale("initial", 8).setLossScale("growth-interval", 2);
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.poisonForward = 5; // step 3's first micro-batch: infinite logits, NaN gradients
        TestStageContext context = run(fixture, dir, architecture, false, -1);
        List<Map<String, Object>> steps = context.steps();
        // GradScaler's rule by hand: 8, 8 (2 good: x2) 16 (skip: x0.5) 8, 8 (2 good: x2) 16
        assertEquals(List.of(8.0, 8.0, 16.0, 8.0, 8.0, 16.0), column(steps, "loss_scale"));
        assertEquals(List.of(0.0, 0.0, 1.0, 1.0, 1.0, 1.0), column(steps, "skipped_steps"));
        assertTrue(Double.isNaN(column(steps, "grad_norm").get(2)), "the skipped step reports no norm");
        assertTrue(Double.isFinite(column(steps, "loss").get(5)), "training went on after the skip");
    }

    @Test
    void skippedStepLeavesWeightsUntouched(@TempDir Path dir) throws Exception {
        // two runs that differ only in a poisoned step 1: the poisoned run's weights after step 1 are
        // the initial weights, so its step 2 sees the initial model's loss on step 2's rows
        SftFixture fixture = new SftFixture().set("precision", "float16").set("token-budget", "24");
        TinyLanguageModel.Architecture poisoned = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        poisoned.hooks.poisonForward = 1;
        TestStageContext p = run(fixture, dir.resolve("p"), poisoned, false, -1);
        TinyLanguageModel.Architecture fresh = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        try (TinyLanguageModel initial = (TinyLanguageModel) fresh.initialize(new ModelOptions(ai.djl.Device.cpu(),
                ai.djl.ndarray.types.DataType.FLOAT32, 7))) {
            // host loss of the initial model (same seed as the stage's, 7) on rows 2 and 3: step 2's micro-batches
            double expected = initial.hostLoss(fixture.data.rows(2, 2));
            assertEquals(expected, column(p.steps(), "loss").get(1), 1e-5);
            assertEquals(1.0, column(p.steps(), "skipped_steps").get(1));
        }
    }

    @Test
    void aSecondRunWithoutResumeIntoTheSameFolderIsRefusedBeforeTraining(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture a = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        run(new SftFixture(), dir, a, false, -1);
        TestStageContext again = new TestStageContext(dir, new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4), false);
        io.anneal.api.InputException e = assertThrows(io.anneal.api.InputException.class,
                () -> new SftFixture().stage().run(again));
        assertTrue(e.getMessage().contains("--resume") && e.getMessage().contains("step-000006"), e.getMessage());
        assertTrue(again.steps().isEmpty(), "no step may run before the refusal");
    }

    @Test
    void nanLossInFloat32StopsWithStepTokensAndLastCheckpoint(@TempDir Path dir) {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.poisonForward = 9; // step 5
        architecture.hooks.poisonFactor = Float.NaN;
        TestStageContext context = new TestStageContext(dir, architecture, false);
        TrainingDivergedException e = assertThrows(TrainingDivergedException.class, () -> new SftFixture().stage().run(context));
        assertTrue(e.getMessage().contains("at step 5 after 48 tokens"), e.getMessage());
        assertTrue(e.getMessage().contains("Last good checkpoint: " + dir.resolve("checkpoints/step-000004")), e.getMessage());
    }

    @Test
    void aRunWhoseLastStepsWereSkippedPublishesNothingAndKeepsTheCheckpointFromBeforeThem(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.poisonFrom = 7; // steps 4, 5 and 6 (2 micro-batches each) have NaN gradients
        architecture.hooks.poisonFactor = Float.NaN;
        TestStageContext context = new TestStageContext(dir, architecture, false);
        io.anneal.runtime.train.RunFailedException e = assertThrows(io.anneal.runtime.train.RunFailedException.class,
                () -> new SftFixture().set("precision", "float16").stage().run(context));
        assertEquals(3, e.exitCode(), "non-finite training has its own exit code");
        assertTrue(e.getMessage().contains("the last 3 optimizer steps were skipped"), e.getMessage());
        assertTrue(e.getMessage().contains("not published"), e.getMessage());
        assertTrue(e.getMessage().contains(dir.resolve("checkpoints/step-000002").toString()), e.getMessage());
        assertEquals(null, context.published);
        assertFalse(Files.exists(dir.resolve("final")));
        // keep-last = 2 would have rotated step 2 out after step 6: it is the newest from before the skips
        assertTrue(listing(dir.resolve("checkpoints")).contains("step-000002"), listing(dir.resolve("checkpoints")).toString());
        assertEquals(6, context.steps().size());
    }

    @Test
    void consecutiveSkipsStopTheRunAtTheConfiguredLimitWithItsOwnExitCode(@TempDir Path dir) throws Exception {
        @SuppressWarnings("unchecked")
        Map<String, Object> defaults = (Map<String, Object>) new SftFixture().block.get("loss-scale");
        assertEquals(20, ((Number) defaults.get("max-consecutive-skips")).intValue(), "the documented default");
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.poisonFrom = 3; // from step 2 on
        architecture.hooks.poisonFactor = Float.NaN;
        TestStageContext context = new TestStageContext(dir, architecture, false);
        io.anneal.runtime.train.RunFailedException e = assertThrows(io.anneal.runtime.train.RunFailedException.class,
                () -> new SftFixture().set("precision", "float16").setLossScale("max-consecutive-skips", 2).stage().run(context));
        assertEquals(3, e.exitCode());
        assertTrue(e.getMessage().contains("stages[0].loss-scale.max-consecutive-skips = 2"), e.getMessage());
        assertTrue(e.getMessage().contains("Last good checkpoint: none"), e.getMessage());
        assertEquals(3, context.steps().size() + 1, "stopped after step 3, before logging it");
        assertEquals(null, context.published);
    }

    @Test
    void outOfMemoryNamesTheMicroBatchSetting(@TempDir Path dir) {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.outOfMemoryForward = 3;
        TestStageContext context = new TestStageContext(dir, architecture, false);
        InputException e = assertThrows(InputException.class, () -> new SftFixture().stage().run(context));
        assertTrue(e.getMessage().contains("lower stages[0].micro-batch-rows (now 1)"), e.getMessage());
        assertTrue(e.getMessage().contains("CUDA out of memory"), e.getMessage());
    }

    private static List<String> listing(Path dir) throws java.io.IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void aFailedCheckpointWriteStopsTheRunNamingTheLastCheckpointOnDisk(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.failingSaveNumber = 2; // the model file of the step-4 checkpoint: disk full halfway
        TestStageContext context = new TestStageContext(dir, architecture, false);
        Exception e = assertThrows(Exception.class, () -> new SftFixture().set("keep-last", 5).stage().run(context));
        assertTrue(e.getMessage().contains("the checkpoint of step 4 could not be written"), e.getMessage());
        assertTrue(e.getMessage().contains("No space left on device"), e.getMessage());
        assertTrue(e.getMessage().contains("the last checkpoint on disk is " + dir.resolve("checkpoints/step-000002")
                + " (step 2)"), e.getMessage());
        assertTrue(e.getMessage().contains("--resume") && e.getMessage().contains("on-checkpoint-failure = continue"),
                e.getMessage());
        assertFalse(e.getMessage().contains("Exception"), e.getMessage());
        assertEquals(4, context.steps().size(), "the run stops at the failed checkpoint");
        assertEquals(List.of("step-000002"), listing(dir.resolve("checkpoints")), "no partial folder is left");
        assertEquals(null, context.published);
        assertFalse(Files.exists(dir.resolve("final")));
    }

    @Test
    void whenNoCheckpointCanBeWrittenTheRunStopsAtTheFirstAndSaysNoneExists(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.failingSavesFrom = 1;
        TestStageContext context = new TestStageContext(dir, architecture, false);
        Exception e = assertThrows(Exception.class, () -> new SftFixture().stage().run(context));
        assertTrue(e.getMessage().contains("the checkpoint of step 2 could not be written"), e.getMessage());
        assertTrue(e.getMessage().contains("no checkpoint exists on disk"), e.getMessage());
        assertFalse(e.getMessage().contains("holds the same weights"), e.getMessage());
        assertEquals(2, context.steps().size());
        assertEquals(List.of(), listing(dir.resolve("checkpoints")));
        assertEquals(List.of("checkpoints"), listing(dir).stream().filter(n -> !n.endsWith(".jsonl")).toList(),
                "no temporary folder is left");
    }

    @Test
    void onCheckpointFailureContinueGoesOnAndLogsAnEventNotAMetricsRow(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.failingSaveNumber = 2; // the model file of the step-4 checkpoint: disk full halfway
        TestStageContext context = run(new SftFixture().set("keep-last", 5).set("on-checkpoint-failure", "continue"),
                dir, architecture, false, -1);
        assertTrue(context.console().contains("the checkpoint of step 4 could not be written"), context.console());
        assertTrue(context.console().contains("No space left on device"), context.console());
        assertTrue(context.metrics.stream().noneMatch(m -> m.containsKey("checkpoint_failed")),
                "metrics rows are training steps only: " + context.metrics);
        List<String> events = Files.readAllLines(dir.resolve("events.jsonl"));
        assertEquals(1, events.size(), events.toString());
        assertTrue(events.get(0).contains("\"event\":\"checkpoint_failed\"") && events.get(0).contains("\"step\":4"),
                events.get(0));
        assertEquals(List.of("step-000002", "step-000006"), listing(dir.resolve("checkpoints")),
                "no partial folder of step 4 is left");
        assertEquals(6, context.steps().size(), "training went on");
        assertEquals(dir.resolve("final"), context.published);
    }

    @Test
    void aFailedFinalWriteAfterFailedCheckpointsDoesNotClaimACheckpointHoldsTheWeights(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.failingSavesFrom = 1;
        TestStageContext context = new TestStageContext(dir, architecture, false);
        Exception e = assertThrows(Exception.class,
                () -> new SftFixture().set("on-checkpoint-failure", "continue").stage().run(context));
        assertTrue(e.getMessage().contains("writing the final model to " + dir.resolve("final") + " failed"), e.getMessage());
        assertTrue(e.getMessage().contains("no checkpoint exists on disk"), e.getMessage());
        assertFalse(e.getMessage().contains("holds the same weights"), e.getMessage());
        assertTrue(listing(dir).stream().noneMatch(n -> n.startsWith("final")), "no partial final folder");
    }

    @Test
    void evaluationReportsEvalLossOnHeldOutData(@TempDir Path dir) throws Exception {
        SftFixture fixture = new SftFixture().set("eval-every", 36).set("eval-tokens", 18);
        fixture.block.put("eval-data", new java.util.LinkedHashMap<>(Map.of("type", "list")));
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext context = run(fixture, dir, architecture, false, -1);
        List<Long> evaluated = context.steps().stream().filter(m -> m.containsKey("eval_loss"))
                .map(m -> ((Number) m.get("step")).longValue()).toList();
        assertEquals(List.of(3L, 6L), evaluated, "every 36 tokens = 3 steps of 12");
        // the eval loss at the end equals the host loss of the final model on the 3 eval rows
        try (TinyLanguageModel m = (TinyLanguageModel) architecture.load(context.published, ModelOptions.cpu())) {
            double expected = m.hostLoss(fixture.evalData.rows(0, 3));
            assertEquals(expected, ((Number) context.steps().get(5).get("eval_loss")).doubleValue(), 1e-5);
        }
        assertFalse(context.steps().get(0).containsKey("eval_loss"));
    }

    @Test
    void aResumedRunNeverRotatesOutItsStartingCheckpoint(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext crashed = new TestStageContext(dir, architecture, false);
        crashed.crashAtStep = 5;
        assertThrows(IllegalStateException.class, () -> new SftFixture().set("keep-last", 1).stage().run(crashed));
        try (Stream<Path> entries = Files.list(dir.resolve("checkpoints"))) {
            assertEquals(List.of("step-000004"), entries.map(p -> p.getFileName().toString()).toList());
        }
        run(new SftFixture().set("keep-last", 1), dir, architecture, true, -1);
        try (Stream<Path> entries = Files.list(dir.resolve("checkpoints"))) {
            assertEquals(List.of("step-000004", "step-000006"), entries.map(p -> p.getFileName().toString()).sorted().toList(),
                    "keep-last = 1 keeps the newest, and the one the run resumed from");
        }
    }

    @Test
    void finalAndEveryCheckpointModelFolderCarryTheDatasTokenizerFiles(@TempDir Path dir) throws Exception {
        run(new SftFixture(), dir, new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4), false, -1);
        List<Path> folders = new ArrayList<>(List.of(dir.resolve("final")));
        try (Stream<Path> entries = Files.list(dir.resolve("checkpoints"))) {
            entries.map(p -> p.resolve(SftStage.MODEL)).forEach(folders::add);
        }
        assertEquals(3, folders.size(), "final and the 2 checkpoints kept: " + folders);
        for (Path folder : folders) {
            assertEquals("{\"model\": {}}", Files.readString(folder.resolve("tokenizer.json")), folder.toString());
            assertTrue(Files.readString(folder.resolve("tokenizer_config.json")).contains("\"chat_template\""), folder.toString());
            assertTrue(Files.isRegularFile(folder.getParent().resolve(CheckpointStore.COMPLETE_MARKER)) || folder.endsWith("final"));
        }
    }

    @Test
    void initFromStartsFromACheckpointFolder(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext first = run(new SftFixture(), dir.resolve("a"), architecture, false, -1);
        SftFixture second = new SftFixture().set("init-from", first.published.toString()).set("token-budget", "12");
        TestStageContext next = run(second, dir.resolve("b"), architecture, false, -1);
        assertTrue(next.console().contains("starting from stages[0].init-from = " + first.published), next.console());
        try (TinyLanguageModel m = (TinyLanguageModel) architecture.load(first.published, ModelOptions.cpu())) {
            // the first step of the second run sees the first run's final weights
            assertEquals(m.hostLoss(second.data.rows(0, 2)), column(next.steps(), "loss").get(0), 1e-5);
        }
    }

    @Test
    void float16GradientsThatOverflowAreSkippedUntilTheScaleFits(@TempDir Path dir) throws Exception {
        // a real overflow, not an injected one: at a scale of 2^24 the float16 gradient of the label's logit,
        // 2^24 * (p_y - 1) / 12 supervised tokens with p_y about 1/11, is about -1.27e6, beyond float16's
        // largest value 65504, so step 1 must overflow; GradScaler's rule then halves the scale after every
        // skipped step and (growth interval 2000) never raises it within this run
        SftFixture fixture = new SftFixture().set("precision", "float16").set("token-budget", "240")
                .setLossScale("initial", 16777216);
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext context = run(fixture, dir, architecture, false, -1);
        List<Double> skipped = column(context.steps(), "skipped_steps");
        List<Double> scales = column(context.steps(), "loss_scale");
        List<Double> norms = column(context.steps(), "grad_norm");
        assertEquals(1.0, skipped.get(0), "step 1 overflows");
        for (int i = 0; i < scales.size(); i++) {
            boolean skippedHere = skipped.get(i) > (i == 0 ? 0 : skipped.get(i - 1));
            assertEquals(skippedHere, Double.isNaN(norms.get(i)), "a skipped step has no gradient norm, step " + (i + 1));
            if (i + 1 < scales.size()) {
                assertEquals(scales.get(i) * (skippedHere ? 0.5 : 1.0), scales.get(i + 1), "scale after step " + (i + 1) + ": " + scales);
            }
        }
        assertTrue(skipped.get(skipped.size() - 1) < skipped.size() / 2.0, "most steps go through once the scale fits: " + skipped);
        List<Double> losses = column(context.steps(), "loss");
        assertTrue(losses.get(losses.size() - 1) < losses.get(0) - 0.1, "training proceeds: " + losses);
    }

    @Test
    void checkpointsSaveEvaluationWeightsAndResumeSwitchesBack(@TempDir Path dir) throws Exception {
        // the protocol a schedule-free optimizer needs: model and optimizer saved while the model holds the
        // evaluation point x (the optimizer records that mode), training weights restored after; on resume,
        // load and then back to the training point
        List<String> events = new ArrayList<>();
        SftFixture fixture = new SftFixture().set("token-budget", "24");
        TestExtensionContext extensions = fixture.extensions()
                .with(io.anneal.api.optim.OptimizerFactory.class, c -> parameters -> new MomentumSgd(parameters, 0.9, events));
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        new SftStageFactory().create(fixture.config(), extensions).run(new TestStageContext(dir, architecture, false));
        // checkpoint at step 2 (the last step), then the final model
        assertEquals(List.of("useEvaluationWeights", "optimizer.save", "useTrainingWeights",
                "useEvaluationWeights", "useTrainingWeights"), events);
        events.clear();
        new SftStageFactory().create(new SftFixture().set("token-budget", "36").config(), extensions)
                .run(new TestStageContext(dir, architecture, true));
        assertEquals(List.of("optimizer.load", "useTrainingWeights"), events.subList(0, 2));
    }

    @Test
    void aFailedFinalModelWriteNamesTheCheckpointThatHoldsTheWeights(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        architecture.hooks.failingSaveNumber = 4; // saves: checkpoints of steps 2, 4, 6, then the final model
        TestStageContext context = new TestStageContext(dir, architecture, false);
        Exception e = assertThrows(io.anneal.runtime.train.RunFailedException.class, () -> new SftFixture().set("keep-last", 5).stage().run(context));
        assertTrue(e.getMessage().contains("the checkpoint of step 6 under " + dir.resolve("checkpoints")), e.getMessage());
        assertTrue(e.getMessage().contains("run again with --resume"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("final.tmp")));
        assertFalse(Files.exists(dir.resolve("final")));
        assertTrue(Files.exists(dir.resolve("checkpoints/step-000006/COMPLETE")));
        // and --resume then publishes it without training further
        architecture.hooks.failingSaveNumber = -1;
        TestStageContext resumed = run(new SftFixture(), dir, architecture, true, -1);
        assertEquals(0, resumed.steps().size());
        assertEquals(dir.resolve("final"), resumed.published);
    }

    @Test
    void aResumedRunRemovesTheTemporaryFoldersOfAPublicationThatWasKilled(@TempDir Path dir) throws Exception {
        // a SIGKILL inside the model writer leaves its own temporary folder beside final.tmp (FaultInjectionIT's
        // random kills found final.tmp.tmp<N> left after the resumed run had published final/)
        TinyLanguageModel.Architecture architecture = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        run(new SftFixture(), dir, architecture, false, -1);
        Files.createDirectories(dir.resolve("final.tmp.tmp7465208931880575323"));
        Files.writeString(dir.resolve("final.tmp.tmp7465208931880575323/model.safetensors"), "torn");
        Files.createDirectories(dir.resolve("final.tmp"));
        TestStageContext resumed = run(new SftFixture(), dir, architecture, true, -1);
        assertEquals(dir.resolve("final"), resumed.published);
        try (java.util.stream.Stream<Path> entries = Files.list(dir)) {
            List<String> left = entries.map(p -> p.getFileName().toString()).filter(n -> n.contains(".tmp")).toList();
            assertEquals(List.of(), left, "temporary folders left beside final/");
        }
    }

    @Test
    void aStopRequestFinishesTheStepWritesACheckpointAndAResumeEndsBitExact(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture a = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext straight = run(new SftFixture(), dir.resolve("straight"), a, false, -1);

        // the stop arrives during step 3 (no checkpoint is due there: they fall at 2, 4, 6)
        TinyLanguageModel.Architecture b = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext stopped = new TestStageContext(dir.resolve("stopped"), b, false);
        stopped.stopDuringStep = 3;
        new SftFixture().stage().run(stopped);
        assertEquals(3, stopped.steps().size(), "the step that was running finishes, no further one starts");
        assertTrue(Files.exists(dir.resolve("stopped/checkpoints/step-000003/COMPLETE")));
        assertEquals(null, stopped.published, "a stopped stage publishes no model");
        assertFalse(Files.exists(dir.resolve("stopped/final")));
        assertTrue(stopped.console().contains("sft: stopped after step 3 (36 tokens); checkpoint "
                + dir.resolve("stopped/checkpoints/step-000003")), stopped.console());

        TestStageContext resumed = run(new SftFixture(), dir.resolve("stopped"), b, true, -1);
        assertTrue(resumed.console().contains("resuming from " + dir.resolve("stopped/checkpoints/step-000003")));
        assertArrayEquals(finalWeights(straight, a)[0], finalWeights(resumed, b)[0]);
        assertArrayEquals(finalWeights(straight, a)[1], finalWeights(resumed, b)[1]);
    }

    @Test
    void aStopRequestBeforeTheFirstStepTrainsNothingAndSaysWhatIsOnDisk(@TempDir Path dir) throws Exception {
        TestStageContext stopped = new TestStageContext(dir, new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4), false);
        stopped.stopDuringStep = 0; // asked while the stage was still loading
        new SftFixture().stage().run(stopped);
        assertTrue(stopped.steps().isEmpty());
        assertTrue(stopped.console().contains("sft: stopped before step 1; no checkpoint exists on disk"), stopped.console());
        assertEquals(null, stopped.published);
    }

    @Test
    void aStopRequestDuringACheckpointStepWritesThatCheckpointOnce(@TempDir Path dir) throws Exception {
        TestStageContext stopped = new TestStageContext(dir, new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4), false);
        stopped.stopDuringStep = 4;
        new SftFixture().stage().run(stopped);
        assertEquals(4, stopped.steps().size());
        assertTrue(Files.exists(dir.resolve("checkpoints/step-000004/COMPLETE")));
        assertFalse(stopped.console().contains("could not be written"), stopped.console());
    }

    @Test
    void resumeFromANamedCheckpointContinuesFromItAndSetsNewerOnesAside(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture a = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext first = run(new SftFixture().set("keep-last", 3), dir, a, false, -1);
        Path four = dir.resolve("checkpoints/step-000004");
        assertTrue(Files.exists(four.resolve("COMPLETE")));
        TestStageContext again = new TestStageContext(dir, a, true);
        again.resumeCheckpoint = four;
        new SftFixture().set("keep-last", 3).stage().run(again);
        assertTrue(again.console().contains("resuming from " + four), again.console());
        assertEquals(List.of(5.0, 6.0), column(again.steps(), "step"));
        assertEquals(column(first.steps(), "loss").subList(4, 6), column(again.steps(), "loss"));
        assertTrue(again.console().contains("set aside " + dir.resolve("checkpoints/step-000006")), again.console());
        assertTrue(Files.exists(dir.resolve("checkpoints/step-000006/COMPLETE")), "rewritten by the resumed run");
    }

    @Test
    void aNamedCheckpointThatIsNotCompleteIsRefusedAsBadInput(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture a = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        run(new SftFixture(), dir, a, false, -1);
        Path four = dir.resolve("checkpoints/step-000004");
        Files.delete(four.resolve("COMPLETE"));
        TestStageContext again = new TestStageContext(dir, a, true);
        again.resumeCheckpoint = four;
        InputException e = assertThrows(InputException.class, () -> new SftFixture().stage().run(again));
        assertTrue(e.getMessage().contains("--resume " + four + ": expected a complete checkpoint folder"), e.getMessage());
        assertTrue(again.steps().isEmpty());
        again.resumeCheckpoint = dir.resolve("checkpoints");
        e = assertThrows(InputException.class, () -> new SftFixture().stage().run(again));
        assertTrue(e.getMessage().contains("expected a complete checkpoint folder (step-NNNNNN with a COMPLETE file)"), e.getMessage());
    }

    @Test
    void theConsoleShowsEvalLossWhenComputedAndEndsWithASummary(@TempDir Path dir) throws Exception {
        SftFixture fixture = new SftFixture().set("eval-every", 36).set("eval-tokens", 18);
        fixture.block.put("eval-data", new java.util.LinkedHashMap<>(Map.of("type", "list")));
        TestStageContext context = run(fixture, dir, new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4), false, -1);
        String console = context.console();
        double at3 = ((Number) context.steps().get(2).get("eval_loss")).doubleValue();
        double at6 = ((Number) context.steps().get(5).get("eval_loss")).doubleValue();
        assertTrue(console.contains(String.format(java.util.Locale.ROOT, "sft: step 3 (36 tokens): eval_loss %.4f", at3)), console);
        assertTrue(console.contains("sft: done: 6 steps, 72 tokens in "), console);
        assertTrue(console.contains(String.format(java.util.Locale.ROOT, "eval_loss final %.4f, best %.4f (step %d)", at6,
                Math.min(at3, at6), at3 < at6 ? 3 : 6)), console);
        assertTrue(console.contains("metrics: " + dir.resolve("metrics.jsonl")), console);
        assertTrue(console.contains("checkpoints: " + dir.resolve("checkpoints")), console);
        assertTrue(console.contains("final model: " + dir.resolve("final")), console);
    }

    /** Rewrites one file of a checkpoint and its line in MANIFEST.sha256, as a checkpoint written that way would hold. */
    private static void replaceInCheckpoint(Path checkpoint, String file, byte[] content) throws Exception {
        Files.write(checkpoint.resolve(file), content);
        Path manifest = checkpoint.resolve(CheckpointStore.MANIFEST);
        String sha = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(content));
        List<String> lines = new ArrayList<>();
        for (String line : Files.readAllLines(manifest)) {
            lines.add(line.endsWith("  " + file) ? sha + "  " + file : line);
        }
        Files.write(manifest, lines);
    }

    /** The tiny model's weights file with its first embedding value replaced by NaN. */
    private static byte[] withNanFirstWeight(Path weightsFile) throws Exception {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(Files.readAllBytes(weightsFile));
        b.putFloat(8, Float.NaN); // after the two ints vocab and width
        return b.array();
    }

    @Test
    void weightsThatAreNoLongerFiniteAreNeverCheckpointedNorNamedAsTheLastGoodCheckpoint(@TempDir Path dir) throws Exception {
        // the update of step 4 leaves a NaN weight: the checkpoint of step 4 is due right after it
        SftFixture fixture = new SftFixture();
        fixture.nanWeightsAtStep = 4;
        TestStageContext context = new TestStageContext(dir, new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4), false);
        RunFailedException e = assertThrows(RunFailedException.class, () -> fixture.stage().run(context));
        assertEquals(3, e.exitCode(), "non-finite training has its own exit code");
        assertTrue(e.getMessage().contains("the weights after step 4 (48 tokens) are not finite "
                + "(model.embed_tokens.weight holds 1 NaN or infinite value of 44), so no checkpoint of them is written"), e.getMessage());
        assertTrue(e.getMessage().contains("Last good checkpoint: " + dir.resolve("checkpoints/step-000002")), e.getMessage());
        assertEquals(List.of("step-000002"), listing(dir.resolve("checkpoints")));
        assertEquals(null, context.published);
    }

    @Test
    void aCheckpointWithNonFiniteWeightsIsSetAsideAndTheResumeFallsBackToTheOlderOneEndingBitExact(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture a = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext straight = run(new SftFixture(), dir.resolve("straight"), a, false, -1);
        TinyLanguageModel.Architecture b = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        Path resumed = dir.resolve("resumed");
        run(new SftFixture(), resumed, b, false, -1);
        Path six = resumed.resolve("checkpoints/step-000006");
        // a NaN in the newest checkpoint's weights, its manifest consistent: only a look at the values finds it
        replaceInCheckpoint(six, "model/" + TinyLanguageModel.WEIGHTS, withNanFirstWeight(six.resolve("model/" + TinyLanguageModel.WEIGHTS)));
        TestStageContext again = run(new SftFixture(), resumed, b, true, -1);
        assertTrue(again.console().contains("sft: checkpoint step-000006 is damaged (non-finite weights: model.embed_tokens.weight "
                + "holds 1 NaN or infinite value of 44); set aside as damaged-step-000006"), again.console());
        assertTrue(again.console().contains("resuming from " + resumed.resolve("checkpoints/step-000004")), again.console());
        assertEquals(List.of(5.0, 6.0), column(again.steps(), "step"));
        assertTrue(listing(resumed.resolve("checkpoints")).contains("damaged-step-000006"));
        float[][] expected = finalWeights(straight, a);
        float[][] actual = finalWeights(again, b);
        assertArrayEquals(expected[0], actual[0]);
        assertArrayEquals(expected[1], actual[1]);

        // named on the command line, the same checkpoint is bad input
        Path named = resumed.resolve("checkpoints/step-000006");
        replaceInCheckpoint(named, "model/" + TinyLanguageModel.WEIGHTS, withNanFirstWeight(named.resolve("model/" + TinyLanguageModel.WEIGHTS)));
        TestStageContext byName = new TestStageContext(resumed, b, true);
        byName.resumeCheckpoint = named;
        InputException e = assertThrows(InputException.class, () -> new SftFixture().set("token-budget", "96").stage().run(byName));
        assertTrue(e.getMessage().contains("--resume: checkpoint " + named + ": the weights are not finite"), e.getMessage());
    }

    @Test
    void aMissingDataStreamOrAGarbageTrainerStateIsNamedAndTheResumeFallsBackToTheOlderCheckpoint(@TempDir Path dir) throws Exception {
        TinyLanguageModel.Architecture a = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        TestStageContext straight = run(new SftFixture().set("keep-last", 3), dir.resolve("straight"), a, false, -1);
        Path run = dir.resolve("run");
        TinyLanguageModel.Architecture b = new TinyLanguageModel.Architecture(SftFixture.VOCAB, 4);
        run(new SftFixture().set("keep-last", 3), run, b, false, -1);
        Path checkpoints = run.resolve("checkpoints");
        // step 6: trainer-state.json overwritten with garbage, the manifest rewritten to match (only a parse finds it)
        replaceInCheckpoint(checkpoints.resolve("step-000006"), TrainerState.FILE, "{\"format\": 1, \"step\": ".getBytes());
        // step 4: data-stream.bin missing, in a checkpoint from before manifests (none to list it)
        Files.delete(checkpoints.resolve("step-000004/" + SftStage.DATA_STATE));
        Files.delete(checkpoints.resolve("step-000004/" + CheckpointStore.MANIFEST));
        TestStageContext again = run(new SftFixture().set("keep-last", 3), run, b, true, -1);
        String console = again.console();
        assertTrue(console.contains("sft: checkpoint step-000006 is damaged (" + checkpoints.resolve("step-000006/" + TrainerState.FILE)
                + ": expected the trainer state as JSON, found text that is not JSON ("), console);
        assertTrue(console.contains("sft: checkpoint step-000004 is damaged (" + checkpoints.resolve("step-000004/" + SftStage.DATA_STATE)
                + " is missing); set aside as damaged-step-000004"), console);
        assertTrue(console.contains("resuming from " + checkpoints.resolve("step-000002")), console);
        assertEquals(List.of(3.0, 4.0, 5.0, 6.0), column(again.steps(), "step"));
        float[][] expected = finalWeights(straight, a);
        float[][] actual = finalWeights(again, b);
        assertArrayEquals(expected[0], actual[0]);
        assertArrayEquals(expected[1], actual[1]);

        // a named checkpoint with a garbage trainer state: exit 2 naming the file, before anything trains
        Path two = checkpoints.resolve("step-000002");
        Files.writeString(two.resolve(TrainerState.FILE), "not json");
        Files.delete(two.resolve(CheckpointStore.MANIFEST));
        TestStageContext byName = new TestStageContext(run, b, true);
        byName.resumeCheckpoint = two;
        InputException e = assertThrows(InputException.class, () -> new SftFixture().stage().run(byName));
        assertTrue(e.getMessage().contains("--resume " + two + ": the checkpoint is damaged: " + two.resolve(TrainerState.FILE)
                + ": expected the trainer state as JSON"), e.getMessage());
        assertTrue(byName.steps().isEmpty());
    }
}
