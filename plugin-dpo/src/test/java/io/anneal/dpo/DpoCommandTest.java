package io.anneal.dpo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.InputException;
import io.anneal.api.cli.Charts;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code anneal dpo loss} on the fixture's pairs gives the fixture's values; bad arrays are a clear error. */
class DpoCommandTest {
    @TempDir
    Path tmp;

    private final ByteArrayOutputStream printed = new ByteArrayOutputStream();

    private CommandContext context() {
        PrintStream out = new PrintStream(printed, true, StandardCharsets.UTF_8);
        return new CommandContext() {
            @Override
            public PrintStream out() {
                return out;
            }

            @Override
            public PrintStream err() {
                return out;
            }

            @Override
            public ConfigView loadConfig(Path file) {
                throw new UnsupportedOperationException();
            }

            @Override
            public ExtensionContext extensions() {
                throw new UnsupportedOperationException();
            }

            @Override
            public Charts charts() {
                throw new UnsupportedOperationException();
            }

            @Override
            public Path workingDirectory() {
                return tmp;
            }
        };
    }

    @Test
    void lossOfTheFixturePairsIsTheFixtureValue() throws Exception {
        ObjectMapper json = new ObjectMapper();
        JsonNode fixtures = json.readTree(getClass().getResourceAsStream("preference-loss-fixtures.json"));
        for (JsonNode c : fixtures.get("cases")) {
            if (c.has("label_smoothing") || c.has("gamma") || c.has("sft_weight")) {
                continue;
            }
            Files.writeString(tmp.resolve("pairs.json"), json.writeValueAsString(json.createObjectNode().set("pairs", c.get("pairs"))));
            printed.reset();
            int code = new DpoCommand().run(List.of("loss", "--type", c.get("type").asText(), "--beta", c.get("beta").asText(),
                    "--input", "pairs.json"), context());
            assertEquals(0, code);
            JsonNode result = json.readTree(printed.toString(StandardCharsets.UTF_8));
            for (String key : List.of("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                    "logps/chosen", "logps/rejected")) {
                assertEquals(c.get("expected").get(key).asDouble(), result.get(key).asDouble(), 1e-6, c.get("name").asText() + " " + key);
            }
        }
    }

    @Test
    void arraysOfDifferentLengthsAreAClearError() throws Exception {
        Files.writeString(tmp.resolve("bad.json"), "{\"pairs\": [{\"policy_chosen\": [-1, -2], \"policy_rejected\": [-1],"
                + " \"reference_chosen\": [-1], \"reference_rejected\": [-1]}]}");
        InputException e = assertThrows(InputException.class,
                () -> new DpoCommand().run(List.of("loss", "--input", "bad.json"), context()));
        assertTrue(e.getMessage().contains("bad.json: pairs[0]: expected reference arrays as long as the policy's"), e.getMessage());
        assertThrows(InputException.class, () -> new DpoCommand().run(List.of("loss", "--type", "kto", "--input", "bad.json"), context()));
    }
}
