package io.anneal.runtime.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.anneal.api.InputException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The trainer's part of a checkpoint ({@code trainer-state.json}): where the run is, the loss scale
 * and its counters, and the random state. The random state is the pipeline seed: before every step
 * the engine is seeded with {@link #stepSeed(long, long)}, so the random stream of step n does not
 * depend on how the run got there, and a resumed run draws the same numbers as an uninterrupted one.
 * The schedule position is the tokens seen (schedules are functions of tokens).
 */
record TrainerState(long step, long tokensSeen, double lossScale, long goodStepsInARow, long skippedSteps,
                    int consecutiveSkips, long seed, double lastLearningRate, String schedule) {
    static final String FILE = "trainer-state.json";
    private static final int FORMAT = 1;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** The engine seed of one step: a SplitMix64 mix of the pipeline seed and the step, folded to an int. */
    static int stepSeed(long seed, long step) {
        long z = seed + 0x9E3779B97F4A7C15L * (step + 1);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z = z ^ (z >>> 31);
        return (int) (z ^ (z >>> 32)) & Integer.MAX_VALUE;
    }

    void write(Path directory) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("step", step);
        root.put("tokens_seen", tokensSeen);
        ObjectNode scale = root.putObject("loss_scale");
        scale.put("scale", lossScale);
        scale.put("good_steps_in_a_row", goodStepsInARow);
        scale.put("skipped_steps", skippedSteps);
        scale.put("consecutive_skips", consecutiveSkips);
        ObjectNode random = root.putObject("random");
        random.put("seed", seed);
        random.put("scheme", "engine seeded before each step with splitmix64(seed, step)");
        ObjectNode position = root.putObject("schedule");
        position.put("tokens_seen", tokensSeen);
        position.put("last_learning_rate", lastLearningRate);
        position.put("schedule", schedule);
        Files.writeString(directory.resolve(FILE), JSON.writeValueAsString(root));
    }

    static TrainerState read(Path directory) throws IOException {
        Path file = directory.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + " is missing: a checkpoint holds its trainer state there");
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new InputException(file + ": expected the trainer state as JSON, found text that is not JSON ("
                    + e.getOriginalMessage() + (e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr()
                    + ", column " + e.getLocation().getColumnNr()) + ")");
        }
        if (root == null || root.isMissingNode() || root.path("format").asInt(-1) != FORMAT) {
            throw new InputException(file + ": expected a trainer state of format " + FORMAT
                    + ", found " + (root == null || root.isMissingNode() ? "an empty file" : "format " + root.path("format")));
        }
        JsonNode scale = root.path("loss_scale");
        return new TrainerState(
                required(root, "step", file).asLong(),
                required(root, "tokens_seen", file).asLong(),
                required(scale, "scale", file).asDouble(),
                required(scale, "good_steps_in_a_row", file).asLong(),
                required(scale, "skipped_steps", file).asLong(),
                required(scale, "consecutive_skips", file).asInt(),
                required(root.path("random"), "seed", file).asLong(),
                root.path("schedule").path("last_learning_rate").asDouble(Double.NaN),
                root.path("schedule").path("schedule").asText(""));
    }

    private static JsonNode required(JsonNode node, String field, Path file) {
        JsonNode value = node.get(field);
        if (value == null || !value.isNumber()) {
            throw new InputException(file + ": expected a number at '" + field + "', found " + (value == null ? "nothing" : value));
        }
        return value;
    }
}
