package io.anneal.distribution.it;

import static io.anneal.distribution.it.Distribution.copyTree;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.distribution.it.Distribution.Result;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * End to end, the onnx plugin: a copy of the assembled distribution into which the plugin's own
 * archive tree (plugins/onnx/) is unpacked, as a user installs it, driven through bin/anneal.
 */
class OnnxIT {
    static final Path FIXTURES = Path.of("..", "plugin-ssm-hybrid/src/test/resources/fixtures/falcon-h1")
            .toAbsolutePath().normalize();
    static final List<String> CASES = List.of("untied-defaults", "long-chunk32", "groups2-tied-mup",
            "rmsnorm-gate-groups2", "mup-untied", "rmsnorm-before-gate-biases");

    @TempDir
    static Path tmp;
    static Distribution dist;
    static Path home;

    @BeforeAll
    static void installWithThePlugin() throws IOException {
        dist = Distribution.copyOfAssembled(tmp);
        home = dist.home;
        dist.addPlugin(Path.of(System.getProperty("anneal.onnx.plugin")));
    }

    static Result anneal(String... args) throws Exception {
        return dist.run(args);
    }

    static Result annealWithInput(String stdin, String... args) throws Exception {
        return dist.command(args).input(stdin).run();
    }

    static float[] floats(Path file) throws IOException {
        FloatBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        float[] out = new float[b.remaining()];
        b.get(out);
        return out;
    }

    /** max |a - b| / max |b|. */
    static double relative(float[] a, float[] b) {
        assertEquals(b.length, a.length);
        double worst = 0;
        double scale = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
            scale = Math.max(scale, Math.abs(b[i]));
        }
        return worst / scale;
    }

    @Test
    void thePluginLoadsFromItsOwnFolderAndTheDefaultDistributionHasNoOnnxRuntime() throws Exception {
        Result r = anneal("plugins");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("onnx 0.1.0-SNAPSHOT  API [1.2,2.0)  " + home.resolve("plugins/onnx")), r.out());
        assertTrue(r.out().contains("  inference-engine: onnx"), r.out());
        Path dist = Path.of(System.getProperty("anneal.dist"));
        assertFalse(Files.exists(dist.resolve("plugins/onnx")), "the default distribution stays without ONNX Runtime");
        try (Stream<Path> lib = Files.list(dist.resolve("lib"))) {
            assertTrue(lib.noneMatch(f -> f.getFileName().toString().contains("onnxruntime")));
        }
        assertTrue(Files.isRegularFile(Path.of(System.getProperty("anneal.onnx.plugin")).resolve("onnxruntime-1.29.0.jar")));
    }

    @Test
    void exportedGraphsScoreEveryFixtureAsTransformersAndTheDjlEngineDo() throws Exception {
        for (String c : CASES) {
            Path fixture = FIXTURES.resolve(c);
            Path out = home.resolve("onnx-" + c);
            Result export = anneal("export", "onnx", "--checkpoint", fixture.toString(), "--out", out.toString());
            assertEquals(0, export.exit(), export.out());
            assertTrue(export.out().contains("prefill.onnx, decode.onnx (opset 17)"), export.out());
            for (String f : List.of("prefill.onnx", "decode.onnx", "weights.onnx.data", "anneal-onnx.json")) {
                assertTrue(Files.isRegularFile(out.resolve(f)), f);
            }
            Result onnx = anneal("logits", "--engine", "onnx", "--checkpoint", out.toString(), "--input",
                    fixture.resolve("input.json").toString(), "--output", c + "-onnx.f32");
            assertEquals(0, onnx.exit(), onnx.out());
            assertTrue(onnx.out().contains("onnx: ONNX Runtime 1.29.0, CPU execution provider"), onnx.out());
            Result djl = anneal("logits", "--checkpoint", fixture.toString(), "--input",
                    fixture.resolve("input.json").toString(), "--output", c + "-djl.f32");
            assertEquals(0, djl.exit(), djl.out());
            float[] fromOnnx = floats(home.resolve(c + "-onnx.f32"));
            double vsDjl = relative(fromOnnx, floats(home.resolve(c + "-djl.f32")));
            double vsTransformers = relative(fromOnnx, floats(fixture.resolve("logits.f32")));
            assertTrue(vsDjl <= 1e-4, c + ": ONNX Runtime vs DJL, relative " + vsDjl);
            assertTrue(vsTransformers <= 1e-4, c + ": ONNX Runtime vs transformers, relative " + vsTransformers);
        }
    }

    @Test
    void logitsWithTheOnnxEngineExportsACheckpointFolderOnTheFly() throws Exception {
        Path fixture = FIXTURES.resolve("groups2-tied-mup");
        Result r = anneal("logits", "--engine", "onnx", "--checkpoint", fixture.toString(), "--input",
                fixture.resolve("input.json").toString(), "--output", "direct.f32");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("onnx: exported " + fixture + " for this run"), r.out());
        assertTrue(relative(floats(home.resolve("direct.f32")), floats(fixture.resolve("logits.f32"))) <= 1e-4);
        // asking for the GPU: the shipped CPU build says in one line why CUDA is not on, and scores on the CPU
        Result gpu = anneal("logits", "--engine", "onnx", "--device", "gpu", "--checkpoint", fixture.toString(), "--input",
                fixture.resolve("input.json").toString(), "--output", "gpu.f32");
        assertEquals(0, gpu.exit(), gpu.out());
        assertEquals(1, gpu.out().lines().filter(l -> l.startsWith("onnx: CUDA execution provider not on: this ONNX Runtime"
                + " 1.29.0 build has no CUDA provider")).count(), gpu.out());
        assertTrue(relative(floats(home.resolve("gpu.f32")), floats(fixture.resolve("logits.f32"))) <= 1e-4);
    }

    @Test
    void badInputIsOneLineAndExitTwo() throws Exception {
        Path fixture = FIXTURES.resolve("mup-untied");
        assertRefusedHere(anneal("export", "onnx", "--checkpoint", "no-such-folder", "--out", "x"),
                home.resolve("no-such-folder") + ": checkpoint folder not found");
        assertRefusedHere(anneal("logits", "--engine", "tensorrt", "--checkpoint", fixture.toString(), "--input",
                fixture.resolve("input.json").toString(), "--output", "x.f32"), "--engine: expected one of djl, onnx, found 'tensorrt'");
        assertRefusedHere(anneal("export", "tflite", "--checkpoint", fixture.toString(), "--out", "x"),
                "anneal export: unknown format 'tflite'; expected onnx");
        // another architecture
        Path llama = home.resolve("llama");
        copyTree(fixture, llama);
        Files.writeString(llama.resolve("config.json"),
                Files.readString(llama.resolve("config.json")).replace("\"falcon_h1\"", "\"llama\""));
        assertRefusedHere(anneal("export", "onnx", "--checkpoint", llama.toString(), "--out", "x"),
                llama.resolve("config.json") + ": model_type is 'llama', expected 'falcon_h1'");
        // a config.json that asks for a layer the weights do not have
        Path deeper = home.resolve("deeper");
        copyTree(fixture, deeper);
        Files.writeString(deeper.resolve("config.json"), Files.readString(deeper.resolve("config.json"))
                .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"));
        assertRefusedHere(anneal("export", "onnx", "--checkpoint", deeper.toString(), "--out", "x"),
                "tensor 'model.layers.2.");
        // an exported folder whose graph is not ONNX, and one whose decode graph takes the wrong inputs
        Path out = home.resolve("broken");
        assertEquals(0, anneal("export", "onnx", "--checkpoint", fixture.toString(), "--out", out.toString()).exit());
        Files.copy(out.resolve("prefill.onnx"), out.resolve("decode.onnx"), StandardCopyOption.REPLACE_EXISTING);
        assertRefusedHere(anneal("logits", "--engine", "onnx", "--checkpoint", out.toString(), "--input",
                fixture.resolve("input.json").toString(), "--output", "x.f32"),
                out.resolve("decode.onnx") + ": the graph has no input 'past.0.key'");
        Files.writeString(out.resolve("prefill.onnx"), "not a model\n");
        assertRefusedHere(anneal("logits", "--engine", "onnx", "--checkpoint", out.toString(), "--input",
                fixture.resolve("input.json").toString(), "--output", "x.f32"),
                out.resolve("prefill.onnx") + ": not a model ONNX Runtime can load");
    }

    /** A tiny Falcon-H1 with its tokenizer files, trained for 10 steps by the shipped SFT example (made once). */
    static Path trained;

    static synchronized Path trainedModel() throws Exception {
        if (trained == null) {
            Result r = anneal("run", "examples/tiny-sft.conf", "--quiet", "--set", "pipeline.run-dir=onnx-sft",
                    "--set", "stages[0].token-budget=\"40960\"");
            assertEquals(0, r.exit(), r.out());
            trained = home.resolve("onnx-sft/1-sft/final");
            assertTrue(Files.isRegularFile(trained.resolve("tokenizer.json")), "the model folder carries its tokenizer");
        }
        return trained;
    }

    /** A cache file of plugin dpo (format 2): its engine and each pair's chosen and rejected sums by key. */
    record ReferenceCache(String engine, java.util.Map<String, double[]> sums) {
        static ReferenceCache read(Path runDir) throws IOException {
            Path file;
            try (Stream<Path> files = Files.walk(runDir)) {
                file = files.filter(f -> f.getParent().getFileName().toString().equals("reference-logps")
                        && f.getFileName().toString().endsWith(".bin")).findFirst().orElseThrow();
            }
            try (java.io.DataInputStream in = new java.io.DataInputStream(new java.io.BufferedInputStream(Files.newInputStream(file)))) {
                assertEquals("anneal reference log-probs 2\n", new String(in.readNBytes(29), StandardCharsets.US_ASCII));
                String engine = in.readUTF();
                in.readNBytes(32);
                long count = in.readLong();
                java.util.Map<String, double[]> sums = new java.util.HashMap<>();
                for (long i = 0; i < count; i++) {
                    sums.put(java.util.HexFormat.of().formatHex(in.readNBytes(16)), new double[] {in.readDouble(), in.readDouble()});
                }
                return new ReferenceCache(engine, sums);
            }
        }
    }

    /** The name of the one reference cache file under a run folder. */
    static String cacheFileName(Path runDir) throws IOException {
        try (Stream<Path> files = Files.walk(runDir)) {
            return files.filter(f -> f.getParent().getFileName().toString().equals("reference-logps")).findFirst()
                    .orElseThrow().getFileName().toString();
        }
    }

    /** The loss of each step in a stage's metrics.jsonl. */
    static List<Double> losses(Path metrics) throws IOException {
        List<Double> out = new ArrayList<>();
        for (String line : Files.readAllLines(metrics)) {
            out.add(new com.fasterxml.jackson.databind.ObjectMapper().readTree(line).get("loss").asDouble());
        }
        return out;
    }

    /**
     * Issue 17 item 3: the DPO reference log-prob cache filled by ONNX Runtime (reference-scorer
     * { type = onnx }: the reference checkpoint exported for the run, each chosen and rejected sequence
     * run alone) against the one the training engine (DJL) fills, for the tiny trained checkpoint:
     * every pair's sums agree within 1e-5 (float32), and so do the DPO losses of the first steps. The
     * files record their engine. A scorer with an on-the-fly reference is refused by validate.
     */
    @Test
    void theDpoReferenceCacheFilledByOnnxRuntimeAgreesWithTheDjlOne() throws Exception {
        Path reference = trainedModel();
        String stage = """
                include "examples/tiny-sft.conf"
                pipeline { name = dpo-reference, run-dir = "%s" }
                stages = [ {
                  type = dpo
                  init-from = "%s"
                  sequence-length = 128
                  micro-batch-rows = 8
                  batch-pairs = 16
                  token-budget = "8192"
                  checkpoint-every = "0"
                  schedule { type = constant, peak-lr = 5e-4 }
                  optimizer { type = adamw, beta2 = 0.999 }
                  objective { type = dpo_norm, beta = 5.0, reference = cached %s }
                  data { type = preferences, tokenizer = "examples/tokenizer/tokenizer.json", seed = 3,
                         sources = [ { name = p, path = "examples/data/preferences-prompt.jsonl" } ] }
                } ]
                """;
        Files.writeString(home.resolve("dpo-djl.conf"), stage.formatted("runs/dpo-djl", reference, ""));
        Files.writeString(home.resolve("dpo-ort.conf"), stage.formatted("runs/dpo-ort", reference,
                ", reference-scorer { type = onnx }"));
        Result djl = anneal("run", "dpo-djl.conf");
        assertEquals(0, djl.exit(), djl.out());
        assertTrue(djl.out().contains("dpo: reference log-probs computed by djl PyTorch "), djl.out());
        Result ort = anneal("run", "dpo-ort.conf");
        assertEquals(0, ort.exit(), ort.out());
        assertTrue(ort.out().contains("onnx: exported " + reference + " for this run"), ort.out());
        assertTrue(ort.out().contains("dpo: reference log-probs computed by onnx-runtime 1.29.0 cpu (reference-scorer onnx)"),
                ort.out());
        assertTrue(ort.out().contains("reference log-probs of 150 pairs in "), ort.out());
        java.util.regex.Pattern took = java.util.regex.Pattern.compile("\\(150 computed now, 0 read from the cache, ([0-9.]+) s\\)");
        java.util.regex.Matcher djlTime = took.matcher(djl.out());
        java.util.regex.Matcher ortTime = took.matcher(ort.out());
        assertTrue(djlTime.find() && ortTime.find(), djl.out() + ort.out());
        System.out.printf("DPO reference log-probs of 150 pairs: DJL %s s, ONNX Runtime %s s (export, each sequence alone)%n",
                djlTime.group(1), ortTime.group(1));
        ReferenceCache byDjl = ReferenceCache.read(home.resolve("runs/dpo-djl"));
        ReferenceCache byOrt = ReferenceCache.read(home.resolve("runs/dpo-ort"));
        assertTrue(byDjl.engine().startsWith("djl PyTorch "), byDjl.engine());
        assertEquals("onnx-runtime 1.29.0 cpu", byOrt.engine());
        assertEquals(150, byDjl.sums().size());
        assertEquals(byDjl.sums().keySet(), byOrt.sums().keySet(), "the same pairs, keyed by their tokens");
        double worst = 0;
        for (java.util.Map.Entry<String, double[]> e : byDjl.sums().entrySet()) {
            for (int side = 0; side < 2; side++) {
                worst = Math.max(worst, Math.abs(e.getValue()[side] - byOrt.sums().get(e.getKey())[side]));
            }
        }
        System.out.printf("DPO reference log-probs, ONNX Runtime vs DJL: max |difference| per sequence %.3g over 300 sequences%n", worst);
        assertTrue(worst <= 1e-5, "per-sequence log-prob difference " + worst);
        List<Double> djlLosses = losses(home.resolve("runs/dpo-djl/1-dpo/metrics.jsonl"));
        List<Double> ortLosses = losses(home.resolve("runs/dpo-ort/1-dpo/metrics.jsonl"));
        assertEquals(4, djlLosses.size(), "8192 tokens at 16 pairs x 128 per step");
        assertEquals(Math.log(2), djlLosses.get(0), 1e-6, "the first step's policy is its reference");
        double lossGap = 0;
        for (int i = 0; i < djlLosses.size(); i++) {
            lossGap = Math.max(lossGap, Math.abs(djlLosses.get(i) - ortLosses.get(i)));
        }
        System.out.printf("DPO losses of the first 4 steps, ONNX Runtime vs DJL reference: max |difference| %.3g (%s vs %s)%n",
                lossGap, djlLosses, ortLosses);
        assertTrue(lossGap <= 1e-5, "losses " + djlLosses + " vs " + ortLosses);
        // a folder anneal export onnx wrote from the reference: the same engine and model hash (the same
        // cache file name), the same values
        Result export = anneal("export", "onnx", "--checkpoint", reference.toString(), "--out", "reference-onnx");
        assertEquals(0, export.exit(), export.out());
        Files.writeString(home.resolve("dpo-ort-exported.conf"), stage.formatted("runs/dpo-ort-exported", reference,
                ", reference-scorer { type = onnx, model = \"reference-onnx\" }"));
        Result exported = anneal("run", "dpo-ort-exported.conf");
        assertEquals(0, exported.exit(), exported.out());
        assertFalse(exported.out().contains("for this run"), "the exported folder is used as it is: " + exported.out());
        assertEquals(cacheFileName(home.resolve("runs/dpo-ort")), cacheFileName(home.resolve("runs/dpo-ort-exported")));
        ReferenceCache byExported = ReferenceCache.read(home.resolve("runs/dpo-ort-exported"));
        for (java.util.Map.Entry<String, double[]> e : byOrt.sums().entrySet()) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(e.getValue(), byExported.sums().get(e.getKey()));
        }
        Files.writeString(home.resolve("dpo-ort-missing.conf"), stage.formatted("runs/dpo-ort-missing", reference,
                ", reference-scorer { type = onnx, model = \"no-such-export\" }"));
        assertRefusedHere(anneal("validate", "dpo-ort-missing.conf"), "stages[0].objective.reference-scorer.model: expected a "
                + "folder written by anneal export onnx (with anneal-onnx.json), or \"\" to export the reference checkpoint for "
                + "the run, found " + home.resolve("no-such-export"));
        Files.writeString(home.resolve("dpo-ort-otf.conf"), stage.formatted("runs/dpo-ort-otf", reference,
                ", reference-scorer { type = onnx }").replace("reference = cached", "reference = on-the-fly"));
        assertRefusedHere(anneal("validate", "dpo-ort-otf.conf"), "stages[0].objective.reference-scorer: expected a reference "
                + "scorer only with reference = cached (it fills the cache; on-the-fly runs the training engine's copy every step), "
                + "found reference = on-the-fly");
    }

    static com.fasterxml.jackson.databind.JsonNode json(Path file) throws IOException {
        return new com.fasterxml.jackson.databind.ObjectMapper().readTree(file.toFile());
    }

    static long[] ids(com.fasterxml.jackson.databind.JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asLong();
        }
        return out;
    }

    @Test
    void generateCarriesTheCachesAndGivesTheTokensOfRecomputingThePrefixGreedilyOver64Tokens() throws Exception {
        Path model = trainedModel();
        Result cached = anneal("generate", "--checkpoint", model.toString(), "--prompt", "What is 2 + 3?",
                "--max-new-tokens", "64", "--json", "cached.json");
        assertEquals(0, cached.exit(), cached.out());
        assertTrue(cached.out().contains("onnx: ONNX Runtime 1.29.0, CPU execution provider"), cached.out());
        assertTrue(cached.out().matches("(?s).*generated \\d+ tokens \\(stopped at (end of turn|max-new-tokens)\\); prefill"
                + " \\d+ tokens at [0-9.]+ tokens/s, decode [0-9.]+ tokens/s\n.*"), cached.out());
        Result recomputed = anneal("generate", "--checkpoint", model.toString(), "--prompt", "What is 2 + 3?",
                "--max-new-tokens", "64", "--json", "recomputed.json", "--recompute");
        assertEquals(0, recomputed.exit(), recomputed.out());
        com.fasterxml.jackson.databind.JsonNode a = json(home.resolve("cached.json"));
        com.fasterxml.jackson.databind.JsonNode b = json(home.resolve("recomputed.json"));
        assertTrue(a.get("cached").asBoolean() && !b.get("cached").asBoolean());
        assertEquals(64, a.get("ids").size(), "greedy over 64 tokens (the 10-step model does not end its turn yet)");
        org.junit.jupiter.api.Assertions.assertArrayEquals(ids(b.get("ids")), ids(a.get("ids")));
        // the prompt is the chat template's rendering with the generation prompt: BOS, <|im_start|>user ... <|im_start|>assistant\n
        long[] prompt = ids(a.get("prompt_ids"));
        assertEquals(1, prompt[0], "the template's BOS first");
        assertTrue(cached.out().contains(a.get("text").asText()), "the answer is printed");
    }

    @Test
    void samplingWithASeedRepeatsAndAnExportedFolderGeneratesAsTheCheckpointDoes() throws Exception {
        Path model = trainedModel();
        Path exported = home.resolve("onnx-trained");
        assertEquals(0, anneal("export", "onnx", "--checkpoint", model.toString(), "--out", exported.toString()).exit());
        for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
            assertTrue(Files.isRegularFile(exported.resolve(f)), "the export carries " + f);
        }
        String[] sampling = {"--prompt", "Name a colour.", "--max-new-tokens", "24", "--temperature", "0.8", "--top-p", "0.9",
            "--seed", "3"};
        List<String> first = new ArrayList<>(List.of("generate", "--checkpoint", model.toString(), "--json", "s1.json"));
        first.addAll(List.of(sampling));
        List<String> second = new ArrayList<>(List.of("generate", "--checkpoint", exported.toString(), "--json", "s2.json"));
        second.addAll(List.of(sampling));
        Result r1 = anneal(first.toArray(String[]::new));
        Result r2 = anneal(second.toArray(String[]::new));
        assertEquals(0, r1.exit(), r1.out());
        assertEquals(0, r2.exit(), r2.out());
        assertFalse(r2.out().contains("exported"), "an exported folder is used as it is: " + r2.out());
        org.junit.jupiter.api.Assertions.assertArrayEquals(ids(json(home.resolve("s1.json")).get("ids")),
                ids(json(home.resolve("s2.json")).get("ids")));
    }

    @Test
    void chatAnswersEachLineOfStandardInputUntilExit() throws Exception {
        Path model = trainedModel();
        Result r = annealWithInput("Hello!\n\n/reset\nWhat is 2 + 3?\n/exit\nnot read\n", "chat", "--checkpoint",
                model.toString(), "--max-new-tokens", "8");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("chat: /reset forgets the conversation, /exit or Ctrl-D ends it"), r.out());
        assertTrue(r.out().contains("(conversation forgotten)"), r.out());
        assertEquals(5, r.out().split("> ", -1).length - 1, "a prompt for each of the 5 lines read up to /exit: " + r.out());
        assertTrue(r.out().contains("(stopped at max-new-tokens)") || r.out().lines().count() > 4, r.out());
        // end of input ends the chat as /exit does
        Result eof = annealWithInput("Hi\n", "chat", "--checkpoint", model.toString(), "--max-new-tokens", "4");
        assertEquals(0, eof.exit(), eof.out());
    }

    @Test
    void benchOnnxPrintsPrefillAndDecodeRatesAndWritesThemAsJson() throws Exception {
        Path model = trainedModel();
        Result r = anneal("bench-onnx", "--checkpoint", model.toString(), "--out", "bench/onnx.json", "--prompt-tokens", "64",
                "--new-tokens", "16", "--repeats", "2");
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().matches("(?s).*prefill: [0-9.]+ tokens/s \\(64-token prompt, batch 1\\).*"), r.out());
        assertTrue(r.out().matches("(?s).*decode:  [0-9.]+ tokens/s \\(16 tokens, batch 1, caches carried\\).*"), r.out());
        com.fasterxml.jackson.databind.JsonNode j = json(home.resolve("bench/onnx.json"));
        assertTrue(j.get("prefill_tokens_per_second").asDouble() > 0);
        assertTrue(j.get("decode_tokens_per_second").asDouble() > 0);
        assertEquals(2, j.get("decode_runs").size());
        assertEquals("cpu", j.get("provider").asText());
    }

    @Test
    void generationRefusesAPromptPastTheContextAndAFolderWithoutATokenizer() throws Exception {
        Path model = trainedModel();
        Path shortContext = home.resolve("short-context");
        copyTree(model, shortContext);
        Files.writeString(shortContext.resolve("config.json"), Files.readString(shortContext.resolve("config.json"))
                .replaceAll("\"max_position_embeddings\" : \\d+", "\"max_position_embeddings\" : 8"));
        assertRefusedHere(anneal("generate", "--checkpoint", shortContext.toString(), "--prompt", "What is 2 + 3?"),
                "the prompt is 16 tokens, the model's context (max_position_embeddings of config.json) is 8");
        Path fixture = FIXTURES.resolve("mup-untied");
        assertRefusedHere(anneal("generate", "--checkpoint", fixture.toString(), "--prompt", "hi"),
                fixture + ": no tokenizer.json");
        assertRefusedHere(anneal("generate", "--checkpoint", model.toString(), "--prompt", "hi", "--top-p", "1.5"),
                "--top-p: expected a number in [0 (exclusive), 1.0], found '1.5'");
    }

    @Test
    void anEvaluateStageAfterSftScoresTheHeldOutDataAsTheSftStageDoesAndAnswersThePrompts() throws Exception {
        Result r = anneal("run", "examples/tiny-sft-evaluate.conf", "--quiet", "--set", "pipeline.run-dir=evaluate-run",
                "--set", "stages[0].token-budget=\"40960\"");
        assertEquals(0, r.exit(), r.out());
        com.fasterxml.jackson.databind.ObjectMapper mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        List<String> sft = Files.readAllLines(home.resolve("evaluate-run/1-sft/metrics.jsonl"));
        double sftEval = mapper.readTree(sft.get(sft.size() - 1)).get("eval_loss").asDouble();
        List<String> evaluated = Files.readAllLines(home.resolve("evaluate-run/2-evaluate/metrics.jsonl"));
        assertEquals(1, evaluated.size());
        com.fasterxml.jackson.databind.JsonNode m = mapper.readTree(evaluated.get(0));
        // the same held-out batches, scored by DJL at the end of SFT and by ONNX Runtime here
        assertEquals(sftEval, m.get("eval_loss").asDouble(), 1e-4 * sftEval, r.out());
        double accuracy = m.get("eval_mean_token_accuracy").asDouble();
        assertTrue(accuracy > 0 && accuracy < 1, m.toString());
        assertTrue(m.get("eval_supervised_tokens").asLong() > 1000, m.toString());
        assertTrue(r.out().contains("evaluate: 3 answers (greedy, at most 32 tokens) in "), r.out());
        List<String> answers = Files.readAllLines(home.resolve("evaluate-run/2-evaluate/answers.jsonl"));
        assertEquals(3, answers.size());
        com.fasterxml.jackson.databind.JsonNode third = mapper.readTree(answers.get(2));
        assertEquals(3, third.get("line").asInt());
        assertEquals(2, third.get("messages").size(), "the reference answer is left out: " + third);
        assertTrue(third.get("tokens").asInt() > 0, third.toString());
    }

    /** A python3 that imports onnx (Debian's python3-onnx, or the GPU machine's), or null. */
    static String pythonWithOnnx() throws Exception {
        for (String python : List.of("/usr/bin/python3", "python3")) {
            try {
                Process p = new ProcessBuilder(python, "-c", "import onnx").redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                if (p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) {
                    return python;
                }
            } catch (IOException e) {
                // not installed
            }
        }
        return null;
    }

    @Test
    void theExportedGraphsPassOnnxsFullChecker() throws Exception {
        String python = pythonWithOnnx();
        org.junit.jupiter.api.Assumptions.assumeTrue(python != null,
                "no python3 with the onnx package here (apt-get install python3-onnx, or the GPU machine): not checked");
        Path checked = home.resolve("checked");
        for (String c : List.of("groups2-tied-mup", "rmsnorm-before-gate-biases")) {
            assertEquals(0, anneal("export", "onnx", "--checkpoint", FIXTURES.resolve(c).toString(), "--out",
                    checked.resolve(c).toString()).exit());
        }
        assertEquals(0, anneal("export", "onnx", "--checkpoint", trainedModel().toString(), "--out",
                checked.resolve("trained").toString()).exit());
        Path script = Path.of("..", "tools/onnx/check_onnx.py").toAbsolutePath().normalize();
        Process p = new ProcessBuilder(python, script.toString(), checked.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        com.fasterxml.jackson.databind.JsonNode report = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out);
        assertEquals(6, report.get("files").size(), out);
        for (com.fasterxml.jackson.databind.JsonNode f : report.get("files")) {
            assertTrue(f.get("ok").asBoolean(), f.toString());
            assertEquals(17, f.get("opsets").get("ai.onnx").asInt(), f.toString());
            assertEquals("[\"ai.onnx\"]", f.get("domains").toString(), "standard ops only: " + f);
        }
    }

    @Test
    void ctrlCEndsAGenerationWithExit130() throws Exception {
        Path model = trainedModel(); // the 10-step model does not end its turn: the generation runs until stopped
        Process p = dist.command("generate", "--checkpoint", model.toString(), "--prompt", "Tell me", "--max-new-tokens", "100000",
                "--recompute").processBuilder().redirectOutput(home.resolve("sigint.log").toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!Files.readString(home.resolve("sigint.log")).contains("CPU execution provider\n ")
                && System.nanoTime() < deadline) {
            Thread.sleep(200); // until the answer has started
        }
        Distribution.signal("INT", p.pid());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "SIGINT ends the generation");
        assertEquals(130, p.exitValue(), Files.readString(home.resolve("sigint.log")));
        String log = Files.readString(home.resolve("sigint.log"));
        assertFalse(log.contains("Exception") || log.contains("hs_err"), log);
        try (Stream<Path> crash = Files.list(home)) {
            assertTrue(crash.noneMatch(f -> f.getFileName().toString().startsWith("hs_err")), "no JVM crash file");
        }
    }

    static void assertRefusedHere(Result r, String message) {
        assertEquals(2, r.exit(), r.out());
        assertTrue(r.out().contains(message), r.out());
        assertTrue(!r.out().contains("\tat ") && !r.out().contains("Exception"), r.out());
    }
}
