package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * {@code tools/gpu/bench_model.py}, from which profile_layers.py and probe_fp8_gemm.py take the shapes
 * they time on the GPU machine: every dimension it reads from the benchmark model's config must be
 * the one {@code bin/anneal config} resolves for {@code bench-train} (the block's values and the
 * plugin's defaults for what it leaves out), so the Python profiles time the model the JVM trains.
 */
class BenchModelIT {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();
    private static final Pattern SETTING = Pattern.compile("^model\\.([a-z0-9-]+) = (\\S+)\\s", Pattern.MULTILINE);

    @Test
    void thePythonToolsReadTheDimensionsBenchTrainResolves() throws Exception {
        Path conf = ROOT.resolve("examples/bench/falcon-h1-291m.conf");
        JsonNode python = bench_model(conf);
        Distribution.Result resolved = Distribution.assembled().run("config", conf.toString());
        assertEquals(0, resolved.exit(), resolved.out());
        Map<String, String> settings = new HashMap<>();
        Matcher m = SETTING.matcher(resolved.out());
        while (m.find()) {
            settings.put(m.group(1), m.group(2));
        }
        int compared = 0;
        for (Map.Entry<String, JsonNode> dimension : python.properties()) {
            assertEquals(settings.get(dimension.getKey()), dimension.getValue().asText(),
                    "model." + dimension.getKey() + ": bench_model.py against bin/anneal config\n" + resolved.out());
            compared++;
        }
        assertEquals(14, compared, python.toString());
    }

    private static JsonNode bench_model(Path conf) throws Exception {
        Process p;
        try {
            p = new ProcessBuilder("python3", ROOT.resolve("tools/gpu/bench_model.py").toString(), conf.toString())
                    .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        } catch (IOException e) {
            Assumptions.abort("no python3 here: tools/gpu/bench_model.py not run (" + e.getMessage() + ")");
            return null;
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), out);
        return new ObjectMapper().readTree(out);
    }
}
