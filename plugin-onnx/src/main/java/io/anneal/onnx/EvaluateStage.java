package io.anneal.onnx;

import com.fasterxml.jackson.databind.JsonNode;
import io.anneal.api.InputException;
import io.anneal.api.config.ConfigView;
import io.anneal.api.data.ChatTokenizer;
import io.anneal.api.data.Message;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.TokenBatchStream;
import io.anneal.api.data.TrainingData;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.train.Stage;
import io.anneal.api.train.StageContext;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code { type = evaluate, data { ... }, tokens = 8K, prompts = "prompts.jsonl" }}: the previous
 * stage's model in ONNX Runtime, no training code. It scores {@code tokens} of held-out chat data
 * (the mean negative log-likelihood and the arg-max accuracy over the supervised, assistant
 * tokens: {@code eval_loss} and {@code eval_mean_token_accuracy}, as TRL names them), reading the
 * data stream exactly as the sft stage's evaluation does (fresh stream, batches of
 * {@code micro-batch-rows} x {@code sequence-length}), and optionally writes an answer to each
 * prompt of a JSONL file into {@code answers.jsonl} of the stage folder.
 */
final class EvaluateStage implements Stage {
    private final ExtensionContext extensions;
    private final TrainingData data;
    private final long tokens;
    private final int sequenceLength;
    private final int rows;
    private final Path prompts;
    private final int maxNewTokens;
    private final OrtModel.Provider provider;

    private EvaluateStage(ExtensionContext extensions, TrainingData data, long tokens, int sequenceLength, int rows,
            Path prompts, int maxNewTokens, OrtModel.Provider provider) {
        this.extensions = extensions;
        this.data = data;
        this.tokens = tokens;
        this.sequenceLength = sequenceLength;
        this.rows = rows;
        this.prompts = prompts;
        this.maxNewTokens = maxNewTokens;
        this.provider = provider;
    }

    /** {@code anneal.stage.evaluate} (reference.conf). */
    static final class Factory implements ExtensionFactory<Stage> {
        @Override
        public Class<Stage> extensionPoint() {
            return Stage.class;
        }

        @Override
        public String type() {
            return "evaluate";
        }

        @Override
        public String description() {
            return "held-out loss and accuracy on assistant tokens, and answers to a prompt file, in ONNX Runtime";
        }

        @Override
        public Map<String, Class<?>> nestedExtensions() {
            return Map.of("data", TrainingData.class);
        }

        @Override
        public Stage create(ConfigView config, ExtensionContext context) {
            if (!config.has("data")) {
                throw config.invalid("data", "a data block of held-out chat data (data { type = mix, ... })", "none");
            }
            TrainingData data = context.build(TrainingData.class, config.getConfig("data"));
            if (data.preferencePairs()) {
                throw config.invalid("data", "chat data (type = mix)", "preference pairs");
            }
            String promptFile = config.getString("prompts");
            return new EvaluateStage(context, data, config.getTokens("tokens").tokens(), config.getInt("sequence-length"),
                    config.getInt("micro-batch-rows"), promptFile.isEmpty() ? null : context.resolvePath(config, "prompts"),
                    config.getInt("max-new-tokens"),
                    OnnxInferenceEngine.provider(config.getString("provider"), config.path() + ".provider"));
        }
    }

    @Override
    public boolean needsInputModel() {
        return true;
    }

    @Override
    public String describe() {
        return "evaluate (ONNX Runtime: " + tokens + " tokens of held-out data" + (prompts == null ? "" : ", answers to "
                + prompts) + ")";
    }

    @Override
    public void run(StageContext context) throws Exception {
        Path model = context.inputModel().orElseThrow(() -> new InputException(
                "the evaluate stage needs a model: put it after an sft or dpo stage"));
        try (OnnxInferenceEngine.Opened opened = OnnxInferenceEngine.openModel(extensions, model, provider, 0,
                context.out())) {
            Map<String, Object> metrics = score(opened.model());
            context.out().println(String.format(Locale.ROOT, "evaluate: eval_loss %.4f, eval_mean_token_accuracy %.4f over"
                    + " %d supervised tokens (%s)", metrics.get("eval_loss"), metrics.get("eval_mean_token_accuracy"),
                    metrics.get("eval_supervised_tokens"), model));
            context.metrics().log(0, metrics);
            if (prompts != null) {
                answer(opened.model(), model, context.stageDirectory().resolve("answers.jsonl"), context);
            }
        }
    }

    /** The sums over every supervised position, one document (a run of equal document ids) at a time. */
    Map<String, Object> score(OrtModel model) {
        int vocab = model.vocabSize();
        long micro = (long) rows * sequenceLength;
        long batches = Math.max(1, (tokens + micro - 1) / micro);
        double[] nll = new double[1];
        long[] counts = new long[2]; // supervised, correct
        try (TokenBatchStream stream = data.open(sequenceLength)) {
            for (long b = 0; b < batches; b++) {
                PackedBatch batch = stream.next(rows);
                OrtDocuments.forEachSupervisedDocument(model, batch, false, (r, start, end, logits) -> {
                    int base = r * batch.length();
                    for (int i = start; i < end; i++) {
                        int label = batch.labels()[base + i];
                        if (label == PackedBatch.IGNORE) {
                            continue;
                        }
                        int at = (i - start) * vocab;
                        int best = 0;
                        for (int v = 1; v < vocab; v++) {
                            best = logits[at + v] > logits[at + best] ? v : best;
                        }
                        nll[0] -= OrtDocuments.logProbability(logits, at, vocab, label);
                        counts[0]++;
                        counts[1] += best == label ? 1 : 0;
                    }
                });
            }
        }
        long supervised = counts[0];
        long correct = counts[1];
        Map<String, Object> metrics = new LinkedHashMap<>();
        metrics.put("eval_loss", supervised == 0 ? Double.NaN : nll[0] / supervised);
        metrics.put("eval_mean_token_accuracy", supervised == 0 ? Double.NaN : (double) correct / supervised);
        metrics.put("eval_supervised_tokens", supervised);
        return metrics;
    }

    /** One answer per prompt line: {"prompt": "..."} or {"messages": [...]} (a last assistant turn is left out). */
    private void answer(OrtModel model, Path modelFolder, Path out, StageContext context) throws IOException {
        if (!Files.isRegularFile(prompts)) {
            throw new InputException(prompts + ": prompt file not found");
        }
        try (ChatTokenizer tokenizer = extensions.build(ChatTokenizer.class, "hf",
                Map.of("folder", modelFolder.toAbsolutePath().toString()), "evaluate stage");
                BufferedWriter writer = Files.newBufferedWriter(out, StandardCharsets.UTF_8)) {
            Generator generator = new Generator(model);
            List<String> lines = Files.readAllLines(prompts, StandardCharsets.UTF_8);
            int written = 0;
            for (int n = 0; n < lines.size(); n++) {
                if (lines.get(n).isBlank()) {
                    continue;
                }
                List<Message> messages = messages(lines.get(n), n + 1);
                long[] ids = tokenizer.encodePrompt(messages);
                Generator.Output o = generator.generate(ids, maxNewTokens, tokenizer.endOfTurn(), Generator.Sampling.GREEDY,
                        false, t -> { });
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("line", n + 1);
                row.put("messages", messages.stream().map(m -> Map.of("role", m.role(), "content", m.content())).toList());
                row.put("answer", tokenizer.decode(o.ids()));
                row.put("tokens", o.ids().length);
                row.put("stop", o.stop().name().toLowerCase(Locale.ROOT));
                writer.write(ExportedFolder.JSON.writer().without(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT).writeValueAsString(row));
                writer.newLine();
                written++;
            }
            context.out().println("evaluate: " + written + " answers (greedy, at most " + maxNewTokens + " tokens) in " + out);
        }
    }

    private List<Message> messages(String line, int number) {
        JsonNode json;
        try {
            json = ExportedFolder.JSON.readTree(line);
        } catch (IOException e) {
            throw new InputException(prompts + ":" + number + ": malformed JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
        List<Message> messages = new ArrayList<>();
        if (json.hasNonNull("prompt") && json.get("prompt").isTextual()) {
            messages.add(new Message(Message.USER, json.get("prompt").asText()));
        } else if (json.has("messages") && json.get("messages").isArray()) {
            for (JsonNode m : json.get("messages")) {
                if (!m.path("role").isTextual() || !m.path("content").isTextual()) {
                    throw new InputException(prompts + ":" + number + ": each message needs a string role and content");
                }
                messages.add(new Message(m.get("role").asText(), m.get("content").asText()));
            }
            if (!messages.isEmpty() && messages.get(messages.size() - 1).isAssistant()) {
                messages.remove(messages.size() - 1); // the reference answer: the model writes its own
            }
        }
        if (messages.isEmpty()) {
            throw new InputException(prompts + ":" + number + ": expected {\"prompt\": \"...\"} or {\"messages\": [...]}");
        }
        return messages;
    }
}
