package io.anneal.runtime.train;

import ai.djl.engine.Engine;
import io.anneal.api.InputException;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.SourceProgress;
import io.anneal.api.data.TokenBatchStream;
import io.anneal.api.data.TrainingData;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepResult;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.api.train.Objective;
import io.anneal.api.train.ObjectiveSetup;
import io.anneal.api.train.ProgressReporter;
import io.anneal.api.train.Stage;
import io.anneal.api.train.StageContext;
import io.anneal.api.units.TokenCount;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;

/**
 * Supervised fine-tuning: token-budget batches of packed rows, cross-entropy on the supervised
 * tokens, the learning rate of the schedule at the tokens seen so far, optional float16 with a
 * dynamic loss scale, evaluation and atomic checkpoints every K tokens, exact resume.
 */
final class SftStage implements Stage {
    static final String CHECKPOINTS = "checkpoints";
    static final String FINAL_MODEL = "final";
    static final String MODEL = "model";
    static final String OPTIMIZER = "optimizer";
    static final String DATA_STATE = "data-stream.bin";
    static final String EVENTS = "events.jsonl";
    static final String OBJECTIVE_STATE = "objective-state.bin";
    private static final com.fasterxml.jackson.databind.ObjectMapper EVENT_JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    private final SftSettings settings;
    private final LrSchedule schedule;
    private final long tokenBudget;
    private final OptimizerFactory optimizerFactory;
    private final TrainingData data;
    private final Optional<TrainingData> evalData;
    private final Optional<Path> initFrom;
    private final Objective objective;
    /** The stage's type (sft, dpo, ...): the prefix of its log lines. */
    private final String label;
    private boolean entropyAbsenceReported;
    /** When the last step's outcome was taken: a step's time starts there at the earliest (steps overlap). */
    private long lastStepEndNanos;

    SftStage(SftSettings settings, LrSchedule schedule, long tokenBudget, OptimizerFactory optimizerFactory,
             TrainingData data, Optional<TrainingData> evalData, Optional<Path> initFrom) {
        this(settings, schedule, tokenBudget, optimizerFactory, data, evalData, initFrom, new SftObjective(), "sft");
    }

    /** A training stage whose loss is {@code objective}'s: the one loop every objective goes through. */
    SftStage(SftSettings settings, LrSchedule schedule, long tokenBudget, OptimizerFactory optimizerFactory,
             TrainingData data, Optional<TrainingData> evalData, Optional<Path> initFrom, Objective objective,
             String label) {
        this.objective = objective;
        this.label = label;
        this.settings = settings;
        this.schedule = schedule;
        this.tokenBudget = tokenBudget;
        this.optimizerFactory = optimizerFactory;
        this.data = data;
        this.evalData = evalData;
        this.initFrom = initFrom;
    }

    @Override
    public boolean producesModel() {
        return true;
    }

    @Override
    public String describe() {
        return (objective instanceof SftObjective ? "sft(" : "train(objective " + objective.describe() + ", ")
                + TokenCount.format(tokenBudget) + " tokens, " + settings.batchDescription() + ", schedule "
                + schedule.describe() + ", optimizer " + optimizerFactory.describe() + ", precision "
                + settings.precision().configName() + ")";
    }

    @Override
    public void run(StageContext context) throws Exception {
        PrintStream out = context.out();
        checkPrecisionEnvironment(out);
        long startNanos = System.nanoTime();
        CheckpointStore store = new CheckpointStore(context.stageDirectory().resolve(CHECKPOINTS), settings.keepLast());
        Optional<CheckpointStore.Checkpoint> named = namedCheckpoint(context);
        for (Path stale : store.removeIncomplete()) {
            out.println(label + ": removed an incomplete checkpoint left by an interrupted write: " + stale);
        }
        if (named.isPresent()) {
            store.setAsideAfter(named.get().step()).forEach((from, to) -> out.println(label + ": set aside " + from
                    + " (newer than the checkpoint resumed from) as " + to));
        }
        if (named.isPresent()) {
            Optional<String> damaged = CheckpointStore.verify(named.get()).or(() -> missingContent(named.get()));
            if (damaged.isPresent()) {
                throw new InputException("--resume " + named.get().directory() + ": the checkpoint is damaged: " + damaged.get());
            }
        }
        // the newest checkpoint whose files match their SHA-256 manifest and hold what a resume reads;
        // damaged newer ones are set aside, named
        java.util.function.BiConsumer<CheckpointStore.Checkpoint, String> damaged = (c, why) ->
                out.println(label + ": checkpoint " + c.directory().getFileName() + " is damaged (" + why
                        + "); set aside as " + CheckpointStore.damagedName(c) + ", falling back to an older one");
        Optional<CheckpointStore.Checkpoint> latest = named.isPresent() ? named : store.latestIntact(SftStage::missingContent, damaged);
        if (!context.resume() && latest.isPresent()) {
            // Starting over would fail to write every checkpoint (a complete one is never overwritten)
            // and mix two runs' metrics: say what to do instead (as transformers' overwrite_output_dir did).
            throw new InputException(store.root() + " holds checkpoints of an earlier run (latest "
                    + latest.get().directory().getFileName()
                    + "); continue it with --resume, or remove that folder (or set pipeline.run-dir) to start afresh");
        }
        Optional<CheckpointStore.Checkpoint> resumeFrom = context.resume() ? latest : Optional.empty();
        ModelArchitecture architecture = context.modelArchitecture();
        ModelOptions options = new ModelOptions(context.device(), settings.precision().computeType(), context.seed());
        CausalLanguageModel opened = openModel(architecture, options, context, resumeFrom, out);
        // weights that are not finite are never resumed from: such a checkpoint is set aside like a damaged one
        for (Optional<String> nonFinite = NonFiniteWeights.find(opened.parameters()); nonFinite.isPresent();
             nonFinite = NonFiniteWeights.find(opened.parameters())) {
            opened.close();
            String where = resumeFrom.map(c -> "--resume: checkpoint " + c.directory())
                    .or(() -> initFrom.map(p -> settings.pathOf(SftStageFactory.INIT_FROM) + " = " + p))
                    .or(() -> context.inputModel().map(p -> "the previous stage's model " + p))
                    .orElse("the initialised model");
            if (resumeFrom.isEmpty() || named.isPresent()) {
                throw new InputException(where + ": the weights are not finite (" + nonFinite.get() + "); expected a model to train from");
            }
            damaged.accept(resumeFrom.get(), "non-finite weights: " + nonFinite.get());
            store.setAsideDamaged(resumeFrom.get());
            resumeFrom = store.latestIntact(SftStage::missingContent, damaged);
            opened = openModel(architecture, options, context, resumeFrom, out);
        }
        if (context.resume()) {
            out.println(resumeFrom.map(c -> label + ": resuming from " + c.directory())
                    .orElse(label + ": --resume: no complete checkpoint under " + store.root() + ", starting from the beginning"));
        }
        try (CausalLanguageModel model = opened;
             ParameterOptimizer optimizer = optimizerFactory.bind(model.parameters());
             TokenBatchStream stream = data.open(settings.sequenceLength());
             Objective lossOf = objective;
             TrainStep step = new TrainStep(model, optimizer, context.device(),
                     settings.pathOf("micro-batch-rows") + " (now " + settings.microBatchRows() + ")", lossOf,
                     settings.cudaGraphs())) {
            checkVocabulary(model);
            if (context.device().isGpu()) {
                out.println(label + ": " + step.graphsLine());
            }
            lossOf.open(objectiveSetup(architecture, options, context, out));
            DynamicLossScale lossScale = new DynamicLossScale(settings.lossScale(), settings.precision().scalesLoss());
            long stepNumber = 0;
            long tokensSeen = 0;
            Optional<Long> protectedStep = Optional.empty();
            if (resumeFrom.isPresent()) {
                Path dir = resumeFrom.get().directory();
                TrainerState saved = TrainerState.read(dir);
                readCheckpointFile(dir.resolve(OPTIMIZER), () -> optimizer.load(dir.resolve(OPTIMIZER)));
                optimizer.useTrainingWeights(); // the checkpoint holds the evaluation weights
                readCheckpointFile(dir.resolve(DATA_STATE), () -> stream.restoreState(Files.readAllBytes(dir.resolve(DATA_STATE))));
                if (Files.isRegularFile(dir.resolve(OBJECTIVE_STATE))) {
                    readCheckpointFile(dir.resolve(OBJECTIVE_STATE),
                            () -> objective.restoreState(Files.readAllBytes(dir.resolve(OBJECTIVE_STATE))));
                }
                lossScale.restore(saved.lossScale(), saved.goodStepsInARow(), saved.skippedSteps(), saved.consecutiveSkips());
                stepNumber = saved.step();
                tokensSeen = saved.tokensSeen();
                protectedStep = Optional.of(saved.step());
            }
            if (context.resume()) {
                context.metrics().restartAt(stepNumber); // the steps after the checkpoint are trained (and logged) again
            }
            // The engine prints describe() in the stage's header; the batch rounding is repeated here
            // because it is what a user most needs to see when the batch is not a whole number of rows.
            out.println(label + ": model " + architecture.describe() + ", " + String.format(Locale.ROOT, "%,d", model.parameterCount())
                    + " parameters; data " + data.describe());
            out.println(label + ": " + settings.batchDescription());
            Progress position = new Progress(stepNumber, tokensSeen, newestClean(store, resumeFrom));
            long firstStep = stepNumber;
            long firstTokens = tokensSeen;
            EvalLosses evalLosses = new EvalLosses();
            // a stop asked while the stage was loading: no step to finish, nothing new to save
            String stopped = context.stopRequested() ? label + ": stopped before step " + (stepNumber + 1) + "; " + lastOnDisk(store) : null;
            Engine engine = model.parameters().get(0).parameter().getArray().getManager().getEngine();
            try (ProgressReporter progress = context.progress(label, tokenBudget, "tokens")) {
                progress.update(tokensSeen, "");
                // A replayed step's numbers come back while the next step runs: step N is enqueued,
                // then N-1's outcome is taken and logged. A step after which the run evaluates,
                // checkpoints or stops is taken at once, so those see the weights of that step (a stop
                // asked while replayed steps are in flight ends the run after the step being enqueued).
                InFlight previous = null;
                while (stopped == null && position.tokensSeen < tokenBudget) {
                    engine.setRandomSeed(TrainerState.stepSeed(context.seed(), position.step));
                    List<PackedBatch> batches = new ArrayList<>(settings.microBatchesPerStep());
                    for (int i = 0; i < settings.microBatchesPerStep(); i++) {
                        batches.add(stream.next(settings.microBatchRows()));
                    }
                    // a replayed step is enqueued before the previous outcome is taken; an eager step
                    // reads the host's loss scale, so every outcome is taken before it starts
                    boolean replayed = step.replays(batches);
                    InFlight current = replayed ? startStep(step, batches, stream, lossScale, position, out) : null;
                    if (previous != null) {
                        report(finishStep(step, previous, lossScale, position, out), previous, evalLosses, store, context, progress);
                        previous = null;
                    }
                    if (!replayed) {
                        current = startStep(step, batches, stream, lossScale, position, out);
                    }
                    boolean last = position.tokensSeen >= tokenBudget;
                    long stepTokens = settings.stepTokens();
                    boolean evalDue = evalData.isPresent() && settings.evalEvery() > 0
                            && (crossed(position.tokensSeen - stepTokens, position.tokensSeen, settings.evalEvery()) || last);
                    boolean checkpointDue = last || (settings.checkpointEvery() > 0
                            && crossed(position.tokensSeen - stepTokens, position.tokensSeen, settings.checkpointEvery()));
                    boolean stopAsked = !last && context.stopRequested();
                    if (current.pending() != null && !evalDue && !checkpointDue && !stopAsked) {
                        previous = current;
                        continue;
                    }
                    Map<String, Object> metrics = finishStep(step, current, lossScale, position, out);
                    if (evalDue) {
                        Map<String, Object> evaluated = evaluate(step, optimizer, evalData.get());
                        metrics.putAll(evaluated);
                        double evalLoss = (Double) evaluated.get("eval_loss");
                        evalLosses.add(position.step, evalLoss);
                        out.println(String.format(Locale.ROOT, label + ": step %d (%,d tokens): eval_loss %.4f%s",
                                position.step, position.tokensSeen, evalLoss, evalLosses.count > 1
                                        ? String.format(Locale.ROOT, " (best %.4f at step %d)", evalLosses.best, evalLosses.bestStep) : ""));
                    }
                    if (position.step % settings.logEverySteps() == 0 || last) {
                        logMetrics(context, store, position.step, metrics);
                    }
                    progress.update(position.tokensSeen, status(metrics, evalLosses, position.step));
                    // asked again now that the step is taken: a stop that came while it ran ends the run after it
                    boolean stop = !last && context.stopRequested();
                    Optional<CheckpointStore.Checkpoint> written = Optional.empty();
                    if (checkpointDue || stop) {
                        Optional<String> nonFinite = NonFiniteWeights.find(model.parameters());
                        if (nonFinite.isPresent()) {
                            // never a checkpoint (nor a "last good" one, nor a final model) of weights that are not finite
                            Map<String, Object> event = new LinkedHashMap<>();
                            event.put("event", "checkpoint_refused");
                            event.put("step", position.step);
                            event.put("num_tokens", position.tokensSeen);
                            event.put("reason", "non-finite weights: " + nonFinite.get());
                            logEvent(context, out, event);
                            throw diverged(String.format(Locale.ROOT, "the weights after step %d (%,d tokens) are not finite (%s), "
                                    + "so no checkpoint of them is written", position.step, position.tokensSeen, nonFinite.get()), position);
                        }
                        TrainerState state = new TrainerState(position.step, position.tokensSeen, lossScale.scale(),
                                lossScale.goodStepsInARow(), lossScale.skippedSteps(), lossScale.consecutiveSkips(),
                                context.seed(), (double) metrics.get("learning_rate"), schedule.describe());
                        // keep-last never rotates out the checkpoint the run resumed from, nor the newest
                        // one from before a run of skipped steps (the one to go back to if they go on)
                        boolean clean = lossScale.consecutiveSkips() == 0;
                        List<Long> keep = new ArrayList<>();
                        protectedStep.ifPresent(keep::add);
                        position.lastGood.filter(c -> !clean).ifPresent(c -> keep.add(c.step()));
                        written = checkpoint(store, state, model, optimizer, stream, keep, out, context);
                        written.filter(c -> clean).ifPresent(c -> position.lastGood = Optional.of(c));
                    }
                    if (stop) {
                        // between steps: no native call is running, the checkpoint is committed; the
                        // engine ends the run with the signal's exit code
                        stopped = String.format(Locale.ROOT, label + ": stopped after step %d (%,d tokens); checkpoint %s",
                                position.step, position.tokensSeen, written.map(c -> c.directory().toString())
                                        .orElse("not written (see above); " + lastOnDisk(store)));
                        break;
                    }
                }
            }
            if (stopped != null) {
                out.println(stopped);
                return;
            }
            if (lossScale.consecutiveSkips() > 0) {
                int skips = lossScale.consecutiveSkips();
                throw diverged(String.format(Locale.ROOT, "the last %d optimizer step%s skipped for non-finite gradients "
                        + "(step %d, %,d tokens, loss scale now %.4g), so the final model is not published", skips,
                        skips == 1 ? " was" : "s were", position.step, position.tokensSeen, lossScale.scale()), position);
            }
            publishFinal(context, store, model, optimizer, position.step, out);
            summary(out, context, store, position, position.step - firstStep, position.tokensSeen - firstTokens,
                    (System.nanoTime() - startNanos) / 1e9, evalLosses);
        }
    }

    /** The progress line's status, most important first: the reporter drops fields from the end to fit the terminal. */
    private String status(Map<String, Object> metrics, EvalLosses eval, long step) {
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT, "loss %.4f", (double) metrics.get("loss")));
        if (eval.count > 0) {
            s.append(String.format(Locale.ROOT, "  eval %.4f", eval.last));
        }
        s.append(String.format(Locale.ROOT, "  step %d  lr %.2e  grad_norm %.3g", step, (double) metrics.get("learning_rate"),
                (double) metrics.get("grad_norm")));
        return s.toString();
    }

    /** The eval losses of this run: the last and the best, with its step. */
    private static final class EvalLosses {
        int count;
        double last = Double.NaN;
        double best = Double.NaN;
        long bestStep;

        void add(long step, double loss) {
            count++;
            last = loss;
            if (Double.isNaN(best) || loss < best) {
                best = loss;
                bestStep = step;
            }
        }
    }

    /** The end of the stage on the console: what was done and where everything is. */
    private void summary(PrintStream out, StageContext context, CheckpointStore store, Progress position, long steps,
                                long tokens, double seconds, EvalLosses eval) {
        out.println(String.format(Locale.ROOT, label + ": done: %d steps, %,d tokens in %s (%,.0f tokens/s); step %d, %,d tokens in all",
                steps, tokens, formatSeconds(seconds), tokens / Math.max(seconds, 1e-9), position.step, position.tokensSeen));
        if (eval.count > 0) {
            out.println(String.format(Locale.ROOT, label + ": eval_loss final %.4f, best %.4f (step %d)", eval.last, eval.best, eval.bestStep));
        }
        out.println(label + ": metrics: " + context.stageDirectory().resolve("metrics.jsonl"));
        out.println(label + ": checkpoints: " + store.root());
        out.println(label + ": final model: " + context.stageDirectory().resolve(FINAL_MODEL));
    }

    static String formatSeconds(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60)
                : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }

    /**
     * The checkpoint named by {@code --resume PATH}, checked before anything else touches the folder:
     * a committed checkpoint of this stage, or bad input.
     */
    private static Optional<CheckpointStore.Checkpoint> namedCheckpoint(StageContext context) {
        Optional<Path> named = context.resumeCheckpoint();
        if (named.isEmpty()) {
            return Optional.empty();
        }
        Path dir = named.get();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("step-(\\d{6,})").matcher(dir.getFileName().toString());
        if (!m.matches() || !Files.isRegularFile(dir.resolve(CheckpointStore.COMPLETE_MARKER))) {
            throw new InputException("--resume " + dir + ": expected a complete checkpoint folder (step-NNNNNN with a COMPLETE file"
                    + (m.matches() ? "; this one has none: its write was interrupted, so it cannot be loaded" : "") + ")");
        }
        return Optional.of(new CheckpointStore.Checkpoint(Long.parseLong(m.group(1)), dir));
    }

    /** What a checkpoint must hold for a resume, checked before anything is loaded; empty when it holds it all. */
    static Optional<String> missingContent(CheckpointStore.Checkpoint checkpoint) {
        Path dir = checkpoint.directory();
        for (String file : List.of(TrainerState.FILE, DATA_STATE)) {
            if (!Files.isRegularFile(dir.resolve(file))) {
                return Optional.of(dir.resolve(file) + " is missing");
            }
        }
        for (String folder : List.of(MODEL, OPTIMIZER)) {
            if (!Files.isDirectory(dir.resolve(folder))) {
                return Optional.of(dir.resolve(folder) + " is missing");
            }
        }
        try {
            long step = TrainerState.read(dir).step();
            if (step != checkpoint.step()) {
                return Optional.of(dir.resolve(TrainerState.FILE) + ": expected step " + checkpoint.step() + ", found " + step);
            }
        } catch (InputException | IOException e) {
            return Optional.of(RunFailedException.reason(e));
        }
        return Optional.empty();
    }

    /** Reading one part of the checkpoint resumed from: a file it cannot read is named, as bad input. */
    private static void readCheckpointFile(Path file, CheckpointRead read) {
        try {
            read.run();
        } catch (InputException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new InputException(file + ": cannot be read back from the checkpoint (" + RunFailedException.reason(e)
                    + "); resume from an older checkpoint with --resume CHECKPOINT");
        }
    }

    @FunctionalInterface
    private interface CheckpointRead {
        void run() throws IOException;
    }

    /**
     * The newest complete checkpoint written after a good step (none of the steps before it in a row
     * skipped): the one a run of skipped steps falls back to, and that rotation keeps.
     */
    private static Optional<CheckpointStore.Checkpoint> newestClean(CheckpointStore store,
                                                                    Optional<CheckpointStore.Checkpoint> resumeFrom) throws IOException {
        if (resumeFrom.isEmpty()) {
            return Optional.empty();
        }
        List<CheckpointStore.Checkpoint> all = store.complete();
        for (int i = all.size() - 1; i >= 0; i--) {
            CheckpointStore.Checkpoint c = all.get(i);
            if (c.step() <= resumeFrom.get().step() && missingContent(c).isEmpty()
                    && TrainerState.read(c.directory()).consecutiveSkips() == 0) {
                return Optional.of(c);
            }
        }
        return Optional.empty();
    }

    /** Where the run is: optimizer steps taken (skipped ones included), tokens seen, the newest clean checkpoint. */
    private static final class Progress {
        long step;
        long tokensSeen;
        Optional<CheckpointStore.Checkpoint> lastGood;

        Progress(long step, long tokensSeen, Optional<CheckpointStore.Checkpoint> lastGood) {
            this.step = step;
            this.tokensSeen = tokensSeen;
            this.lastGood = lastGood;
        }
    }

    /**
     * One optimizer step drawn and started: {@code pending} is a replayed step still running on the
     * device, {@code eager} a step already taken. {@code step} and {@code tokensSeen} are the
     * position after it; {@code epoch} and {@code sources} the data stream's right after its draw.
     */
    private record InFlight(long step, long tokensSeen, double learningRate, double lossScale, long startNanos,
                            TrainStep.PendingStep pending, TrainStep.Outcome eager, OptionalDouble epoch,
                            List<SourceProgress> sources) {
    }

    /**
     * Starts one optimizer step on its whole batch (drawn first: its supervised tokens are the
     * loss's denominator), at the LR of the tokens seen BEFORE the step: enqueued as CUDA graph
     * replays, or forward, backward and the optimizer step eagerly. Moves {@code position} past it.
     */
    private InFlight startStep(TrainStep step, List<PackedBatch> batches, TokenBatchStream stream,
                               DynamicLossScale lossScale, Progress position, PrintStream out) {
        long startNanos = System.nanoTime();
        double learningRate = schedule.lrAt(position.tokensSeen);
        double scale = lossScale.scale();
        Optional<TrainStep.PendingStep> replayed = step.replayStep(batches, learningRate, lossScale, settings.maxGradNorm());
        TrainStep.Outcome eager = null;
        if (replayed.isEmpty()) {
            TrainStep.BatchLoss loss = step.accumulateGradients(batches, scale);
            checkLoss(step, loss, position.step + 1, position.tokensSeen, learningRate, position);
            StepResult result = loss.supervisedTokens() == 0 ? skipEmptyBatch(step, out, position.step)
                    : step.applyGradients(learningRate, scale, settings.maxGradNorm());
            eager = new TrainStep.Outcome(loss, result);
        }
        long tokens = 0;
        for (PackedBatch b : batches) {
            tokens += b.tokens();
        }
        position.step++;
        position.tokensSeen += tokens;
        return new InFlight(position.step, position.tokensSeen, learningRate, scale, startNanos, replayed.orElse(null),
                eager, stream.epoch(), List.copyOf(stream.progress()));
    }

    /**
     * A non-finite loss without a loss scale, or a preference batch that is not batch-pairs pairs,
     * stops the run (the gradients zeroed; a replayed step has left the weights untouched already
     * when its gradients were not finite).
     */
    private void checkLoss(TrainStep step, TrainStep.BatchLoss loss, long stepNumber, long tokensBefore,
                           double learningRate, Progress position) {
        if (!Double.isFinite(loss.negativeLogLikelihood()) && !settings.precision().scalesLoss()) {
            // without a loss scale there is no overflow to back off from: the run has diverged
            step.zeroGradients();
            throw diverged(String.format(Locale.ROOT, "the loss is %s at step %d after %,d tokens (%s precision, learning rate %.4g)",
                    loss.negativeLogLikelihood(), stepNumber, tokensBefore, settings.precision().configName(),
                    learningRate), position);
        }
        if (settings.batchPairs() > 0 && loss.supervisedTokens() != settings.batchPairs()) {
            // the batch is counted in pairs on the contract that a preference source puts one pair per row
            step.zeroGradients();
            throw new InputException(String.format(Locale.ROOT, "%s: the step's %d rows held %d preference pairs, expected %s = %d "
                    + "(one pair per row, as io.anneal.api.data.PreferenceRows lays them out); data %s packs them otherwise",
                    settings.pathOf("data"), settings.microBatchesPerStep() * settings.microBatchRows(), loss.supervisedTokens(),
                    settings.pathOf(SftSettings.BATCH_PAIRS), settings.batchPairs(), data.describe()));
        }
    }

    /**
     * Takes a started step's outcome (waiting for a replayed one's numbers only), updates the loss
     * scale from it and returns the step's metrics.
     */
    private Map<String, Object> finishStep(TrainStep step, InFlight s, DynamicLossScale lossScale, Progress position,
                                           PrintStream out) {
        TrainStep.Outcome outcome = s.eager() != null ? s.eager() : s.pending().outcome();
        TrainStep.BatchLoss loss = outcome.loss();
        if (s.pending() != null) {
            checkLoss(step, loss, s.step(), s.tokensSeen() - loss.tokens(), s.learningRate(), position);
        }
        StepResult result = outcome.result();
        lossScale.update(result.skipped());
        if (outcome.deviceScale() != null) {
            lossScale.confirm(outcome.deviceScale());
        }
        if (lossScale.diverged()) {
            throw diverged(String.format(Locale.ROOT, "%d optimizer steps in a row had non-finite gradients (step %d, %,d tokens, "
                    + "loss scale now %.4g; %s = %d)", lossScale.consecutiveSkips(), s.step(), s.tokensSeen(), lossScale.scale(),
                    settings.pathOf("loss-scale.max-consecutive-skips"), settings.lossScale().maxConsecutiveSkips()), position);
        }
        // steps in flight overlap: a step's time runs from its start or the previous step's end, whichever is later
        long now = System.nanoTime();
        double seconds = (now - Math.max(s.startNanos(), lastStepEndNanos)) / 1e9;
        lastStepEndNanos = now;
        Map<String, Object> metrics = new LinkedHashMap<>();
        metrics.put("loss", loss.loss());
        metrics.put("learning_rate", s.learningRate());
        metrics.put("grad_norm", result.gradNorm());
        metrics.put("num_tokens", s.tokensSeen());
        if (settings.batchPairs() > 0) {
            // samples seen: every step holds exactly batch-pairs pairs (checked above), so this survives --resume
            metrics.put("num_pairs", s.step() * settings.batchPairs());
        }
        for (String name : objective.metricNames()) {
            if (name.equals(SftObjective.ENTROPY)) {
                // TRL's entropy: a mean over the positions it was computed on, not over the supervised tokens
                double positions = loss.metricSums().getOrDefault(SftObjective.ENTROPY_POSITIONS, 0.0);
                if (positions > 0) {
                    metrics.put(name, loss.metricSums().get(name) / positions);
                } else if (!entropyAbsenceReported) {
                    entropyAbsenceReported = true;
                    out.println(label + ": entropy is not logged: the model's fused LM head computes no logits (as TRL leaves it "
                            + "out under its fused Liger loss)");
                }
            } else if (!name.equals(SftObjective.ENTROPY_POSITIONS)) {
                metrics.put(name, loss.metric(name));
            }
        }
        // TRL's epoch: passes over the data so far, in the unit of the data plan (tokens of every source once)
        s.epoch().ifPresent(epoch -> metrics.put("epoch", epoch));
        metrics.put("tokens_per_second", loss.tokens() / Math.max(seconds, 1e-9));
        metrics.put("loss_scale", outcome.deviceScale() != null ? outcome.deviceScale().used() : s.lossScale());
        metrics.put("skipped_steps", lossScale.skippedSteps());
        for (SourceProgress p : s.sources()) {
            metrics.put("epoch/" + p.source(), p.epochs());
        }
        return metrics;
    }

    /** Logs a step taken after the next one started (never one after which the run evaluates, checkpoints or stops). */
    private void report(Map<String, Object> metrics, InFlight s, EvalLosses evalLosses, CheckpointStore store,
                        StageContext context, ProgressReporter progress) throws IOException {
        if (s.step() % settings.logEverySteps() == 0) {
            logMetrics(context, store, s.step(), metrics);
        }
        progress.update(s.tokensSeen(), status(metrics, evalLosses, s.step()));
    }

    private TrainingDivergedException diverged(String what, Progress position) {
        return new TrainingDivergedException(label + ": " + what + "; training stopped. Last good checkpoint: "
                + position.lastGood.map(c -> c.directory().toString()).orElse("none"));
    }

    private CausalLanguageModel openModel(ModelArchitecture architecture, ModelOptions options, StageContext context,
                                          Optional<CheckpointStore.Checkpoint> resumeFrom, PrintStream out) {
        if (resumeFrom.isPresent()) {
            return architecture.load(resumeFrom.get().directory().resolve(MODEL), options);
        }
        if (initFrom.isPresent()) {
            out.println(label + ": starting from " + settings.pathOf(SftStageFactory.INIT_FROM) + " = " + initFrom.get()
                    + context.inputModel().map(p -> " (not from the previous stage's " + p + ")").orElse(""));
            return architecture.load(initFrom.get(), options);
        }
        if (context.inputModel().isPresent()) {
            out.println(label + ": starting from the previous stage's model " + context.inputModel().get());
            return architecture.load(context.inputModel().get(), options);
        }
        out.println(label + ": starting from a randomly initialised model (seed " + context.seed() + ")");
        return architecture.initialize(options);
    }

    /** The objective's view of the stage: its reference model is the policy's initial weights, whatever the resume point. */
    private ObjectiveSetup objectiveSetup(ModelArchitecture architecture, ModelOptions options, StageContext context,
                                          PrintStream out) {
        return new ObjectiveSetup() {
            @Override
            public CausalLanguageModel loadInitialModel() {
                return openModel(architecture, options, context, Optional.empty(), new PrintStream(java.io.OutputStream.nullOutputStream()));
            }

            @Override
            public Optional<Path> initialModelFolder() {
                return initFrom.or(context::inputModel); // openModel's order, without a resume point
            }

            @Override
            public Path stageDirectory() {
                return context.stageDirectory();
            }

            @Override
            public String configPath() {
                return settings.pathOf("objective");
            }

            @Override
            public PrintStream out() {
                return out;
            }

            @Override
            public Optional<TokenBatchStream> openTrainingData() {
                return Optional.of(data.open(settings.sequenceLength()));
            }

            @Override
            public Optional<TokenBatchStream> openEvaluationData() {
                return evalData.map(d -> d.open(settings.sequenceLength()));
            }

            @Override
            public int microBatchRows() {
                return settings.microBatchRows();
            }

            @Override
            public long evaluationMicroBatches() {
                return evalData.isPresent() && settings.evalEvery() > 0 ? evaluationMicroBatchCount() : 0;
            }
        };
    }

    /** Micro-batches of each evaluation: {@code eval-tokens} rounded up to whole micro-batches. */
    private long evaluationMicroBatchCount() {
        long microTokens = settings.microBatchTokens();
        return Math.max(1, (settings.evalTokens() + microTokens - 1) / microTokens);
    }

    private void checkVocabulary(CausalLanguageModel model) {
        if (data.vocabularySize() > model.vocabSize()) {
            throw new InputException(settings.pathOf("data") + ": the tokenizer's vocabulary (" + data.vocabularySize()
                    + " tokens) is larger than the model's (" + model.vocabSize() + "); use the model's tokenizer");
        }
    }

    private void checkPrecisionEnvironment(PrintStream out) {
        if (settings.precision() == Precision.TF32 && !"1".equals(System.getenv(Precision.TF32_ENVIRONMENT))) {
            out.println(label + ": warning: " + settings.pathOf("precision") + " = tf32, but " + Precision.TF32_ENVIRONMENT
                    + "=1 is not set in the environment, so libtorch computes matmuls in full float32; "
                    + "export it before starting anneal");
        }
    }

    private StepResult skipEmptyBatch(TrainStep step, PrintStream out, long stepNumber) {
        out.println(label + ": warning: step " + (stepNumber + 1) + " drew no supervised token; no optimizer step taken");
        step.zeroGradients();
        return new StepResult(0.0, false);
    }

    /** True when a multiple of {@code every} lies in (before, after]. */
    static boolean crossed(long before, long after, long every) {
        return after / every > before / every;
    }

    /**
     * Loss ({@code eval_loss}) and the objective's evaluation metrics ({@code eval_<name>}) on
     * {@code eval-tokens} of held-out data, the same batches every time (a fresh stream).
     */
    private Map<String, Object> evaluate(TrainStep step, ParameterOptimizer optimizer, TrainingData held) {
        optimizer.useEvaluationWeights();
        try (TokenBatchStream evalStream = held.open(settings.sequenceLength())) {
            long count = evaluationMicroBatchCount();
            double nll = 0;
            long supervised = 0;
            Map<String, Double> sums = new LinkedHashMap<>();
            for (long i = 0; i < count; i++) {
                TrainStep.BatchLoss l = step.evaluate(List.of(evalStream.next(settings.microBatchRows())));
                nll += l.negativeLogLikelihood();
                supervised += l.supervisedTokens();
                l.metricSums().forEach((name, sum) -> sums.merge(name, sum, Double::sum));
            }
            Map<String, Object> metrics = new LinkedHashMap<>();
            metrics.put("eval_loss", supervised == 0 ? Double.NaN : nll / supervised);
            for (String name : objective.evaluationMetrics()) {
                metrics.put("eval_" + name, supervised == 0 ? Double.NaN : sums.getOrDefault(name, 0.0) / supervised);
            }
            return metrics;
        } finally {
            optimizer.useTrainingWeights();
        }
    }

    /**
     * Writes one checkpoint. A failed write (disk full, I/O error) leaves no partial folder and the
     * previous checkpoint as it was; by default it stops the run with a message naming the last
     * checkpoint on disk, with {@code on-checkpoint-failure = continue} it is logged (console and
     * {@code events.jsonl}) and training goes on. A failed rotation is only a warning: the new
     * checkpoint is committed.
     */
    private Optional<CheckpointStore.Checkpoint> checkpoint(CheckpointStore store, TrainerState state,
                                                            CausalLanguageModel model, ParameterOptimizer optimizer,
                                                            TokenBatchStream stream, List<Long> protectedSteps,
                                                            PrintStream out, StageContext context) {
        CheckpointStore.Checkpoint written;
        try {
            written = store.write(state.step(), dir -> {
                // model and optimizer are saved in the same mode (the evaluation weights of a schedule-free
                // optimizer, which records the mode); resume loads both and switches back to training weights
                optimizer.useEvaluationWeights();
                try {
                    model.save(dir.resolve(MODEL));
                    writeDataFiles(dir.resolve(MODEL));
                    FaultPoints.reached("checkpoint.model-written", state.step());
                    optimizer.save(Files.createDirectories(dir.resolve(OPTIMIZER)));
                    FaultPoints.reached("checkpoint.optimizer-written", state.step());
                } finally {
                    optimizer.useTrainingWeights();
                }
                Files.write(dir.resolve(DATA_STATE), stream.saveState());
                byte[] objectiveState = objective.saveState();
                if (objectiveState.length > 0) {
                    Files.write(dir.resolve(OBJECTIVE_STATE), objectiveState);
                }
                FaultPoints.reached("checkpoint.data-stream-written", state.step());
                state.write(dir);
                FaultPoints.reached("checkpoint.trainer-state-written", state.step());
            });
        } catch (IOException | RuntimeException e) {
            String message = label + ": the checkpoint of step " + state.step() + " could not be written to " + store.root()
                    + " (" + RunFailedException.reason(e) + "); " + lastOnDisk(store);
            Map<String, Object> event = new LinkedHashMap<>();
            event.put("event", "checkpoint_failed");
            event.put("step", state.step());
            event.put("num_tokens", state.tokensSeen());
            event.put("reason", RunFailedException.reason(e));
            logEvent(context, out, event);
            if (settings.onCheckpointFailure() == SftSettings.OnCheckpointFailure.STOP) {
                throw new RunFailedException(message + ". The run stopped: free space (or fix the error) and run again with "
                        + "--resume, or set " + settings.pathOf("on-checkpoint-failure") + " = continue to train on "
                        + "without checkpoints", e);
            }
            out.println(message + "; training continues (" + settings.pathOf("on-checkpoint-failure") + " = continue)");
            return Optional.empty();
        }
        try {
            for (Path deleted : store.rotate(protectedSteps)) {
                out.println(label + ": rotated out " + deleted);
            }
        } catch (IOException | RuntimeException e) {
            out.println(label + ": warning: rotating out old checkpoints under " + store.root() + " failed ("
                    + RunFailedException.reason(e) + "); the checkpoint of step " + state.step() + " is committed");
        }
        return Optional.of(written);
    }

    /**
     * The data's files (tokenizer, chat template) beside the saved weights, so that the folder loads with
     * transformers' AutoTokenizer; written before the folder is synced and committed.
     */
    private void writeDataFiles(Path modelDir) throws IOException {
        for (Map.Entry<String, byte[]> file : data.modelFolderFiles().entrySet()) {
            Files.write(modelDir.resolve(file.getKey()), file.getValue());
        }
    }

    /**
     * Logs a step's row; a row the sinks cannot write (a full disk) stops the run as a checkpoint that
     * cannot be written does, saying what is safe on disk (the sink leaves no torn line).
     */
    private void logMetrics(StageContext context, CheckpointStore store, long step, Map<String, Object> metrics) {
        try {
            context.metrics().log(step, metrics);
        } catch (java.io.UncheckedIOException e) {
            throw new RunFailedException(label + ": " + e.getMessage() + " at step " + step + "; " + lastOnDisk(store)
                    + ". The run stopped: free space (or fix the error) and run again with --resume", e);
        }
    }

    /** What is safe on disk, read from the disk itself: the newest complete checkpoint, or that none exists. */
    private static String lastOnDisk(CheckpointStore store) {
        try {
            return store.latestComplete()
                    .map(c -> "the last checkpoint on disk is " + c.directory() + " (step " + c.step() + ")")
                    .orElse("no checkpoint exists on disk, so the work of this run is not saved");
        } catch (IOException e) {
            return "the checkpoints under " + store.root() + " cannot be listed (" + RunFailedException.reason(e) + ")";
        }
    }

    /** One line of {@code <stage dir>/events.jsonl}: things that happened that are not training steps. */
    private void logEvent(StageContext context, PrintStream out, Map<String, Object> event) {
        Path file = context.stageDirectory().resolve(EVENTS);
        try {
            Files.writeString(file, EVENT_JSON.writeValueAsString(event) + "\n", java.nio.charset.StandardCharsets.UTF_8,
                    java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        } catch (IOException e) {
            out.println(label + ": warning: cannot write " + file + " (" + RunFailedException.reason(e) + ")");
        }
    }

    /**
     * Writes the final model next to a temp name and renames it to {@code final}: a failure leaves the
     * last checkpoint (written just before) as the way to get the model, and says so.
     */
    private void publishFinal(StageContext context, CheckpointStore store, CausalLanguageModel model,
                              ParameterOptimizer optimizer, long finalStep, PrintStream out) {
        Path finalDir = context.stageDirectory().resolve(FINAL_MODEL);
        Path temp = context.stageDirectory().resolve(FINAL_MODEL + ".tmp");
        try {
            deleteTemporaryFinals(context.stageDirectory());
            optimizer.useEvaluationWeights();
            try {
                model.save(temp);
                writeDataFiles(temp);
            } finally {
                optimizer.useTrainingWeights();
            }
            CheckpointStore.syncTree(temp);
            FaultPoints.reached("final.written", finalStep);
            CheckpointStore.deleteTree(finalDir);
            Files.move(temp, finalDir, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            CheckpointStore.syncDirectory(context.stageDirectory());
        } catch (IOException | RuntimeException e) {
            Optional<CheckpointStore.Checkpoint> last = Optional.empty();
            try {
                last = store.latestComplete();
            } catch (IOException listing) {
                e.addSuppressed(listing);
            }
            String safe = last.isPresent() && last.get().step() == finalStep
                    ? "the checkpoint of step " + finalStep + " under " + store.root()
                            + " holds the same weights: free space and run again with --resume"
                    : lastOnDisk(store) + ": free space and run again" + (last.isPresent() ? " with --resume" : "");
            RunFailedException reported = new RunFailedException(label + ": writing the final model to " + finalDir + " failed ("
                    + RunFailedException.reason(e) + "); " + safe, e);
            try {
                deleteTemporaryFinals(context.stageDirectory());
            } catch (IOException cleanup) {
                reported.addSuppressed(cleanup);
            }
            throw reported;
        }
        out.println(label + ": final model (step " + finalStep + ") in " + finalDir);
        context.publishModel(finalDir);
    }

    /**
     * Removes what an interrupted publication left: {@code final.tmp}, and the model writer's own
     * temporary folders beside it ({@code final.tmp.tmp<N>}, which a kill inside {@code save} leaves;
     * found by FaultInjectionIT's random kills).
     */
    private static void deleteTemporaryFinals(Path stageDirectory) throws IOException {
        if (!Files.isDirectory(stageDirectory)) {
            return;
        }
        List<Path> temporaries;
        try (java.util.stream.Stream<Path> entries = Files.list(stageDirectory)) {
            temporaries = entries.filter(p -> p.getFileName().toString().startsWith(FINAL_MODEL + ".tmp")).toList();
        }
        for (Path temporary : temporaries) {
            CheckpointStore.deleteTree(temporary);
        }
    }
}
