package io.anneal.runtime.train;

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
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PlotCommandTest {

    /** One drawn chart, as the command asked for it. */
    record Drawn(Path png, String title, Charts.Axis xAxis, List<Charts.Series> series) {
    }

    private static final class Context implements CommandContext {
        final Path dir;
        final List<Drawn> drawn = new ArrayList<>();
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();

        Context(Path dir) {
            this.dir = dir;
        }

        @Override
        public PrintStream out() {
            return new PrintStream(bytes, true, StandardCharsets.UTF_8);
        }

        @Override
        public PrintStream err() {
            return out();
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
            return (png, title, xLabel, xAxis, yLabel, yAxis, series) -> drawn.add(new Drawn(png, title, xAxis, series));
        }

        @Override
        public Path workingDirectory() {
            return dir;
        }
    }

    @Test
    void plotsLossesTogetherAndOtherMetricsApartAgainstTokens(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("metrics.jsonl"), String.join("\n",
                "{\"step\":1,\"loss\":2.5,\"learning_rate\":1e-4,\"num_tokens\":1000}",
                "{\"step\":2,\"loss\":2.0,\"learning_rate\":2e-4,\"num_tokens\":2000,\"eval_loss\":2.2}",
                "{\"step\":2,\"checkpoint_failed\":1}",
                "{\"step\":3,\"loss\":NaN,\"learning_rate\":1e-4,\"num_tokens\":2500}",
                "",
                "{\"step\":4,\"loss\":1.5,\"learning_rate\":1e-4,\"num_tokens\":3000}") + "\n");
        Context context = new Context(dir);
        int code = new PlotCommand().run(List.of("metrics.jsonl", "--out", "loss.png", "--metrics", "loss,eval_loss,learning_rate"), context);
        assertEquals(0, code);
        assertEquals(2, context.drawn.size());
        Drawn losses = context.drawn.get(0);
        assertEquals(dir.resolve("loss.png"), losses.png());
        assertEquals(Charts.Axis.TOKENS, losses.xAxis());
        assertEquals(List.of("loss", "eval_loss"), losses.series().stream().map(Charts.Series::name).toList());
        assertArrayEquals(new double[] {1000, 2000, 3000}, losses.series().get(0).x());
        assertArrayEquals(new double[] {2.5, 2.0, 1.5}, losses.series().get(0).y());
        assertArrayEquals(new double[] {2000}, losses.series().get(1).x());
        Drawn lr = context.drawn.get(1);
        assertEquals(dir.resolve("loss-learning_rate.png"), lr.png());
        assertArrayEquals(new double[] {1e-4, 2e-4, 1e-4, 1e-4}, lr.series().get(0).y(), "the NaN loss line still has an LR");
    }

    @Test
    void aBrokenLineIsReportedWithFileAndLine(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("m.jsonl"), "{\"loss\":1,\"num_tokens\":5}\n{\"loss\": oops}\n");
        InputException e = assertThrows(InputException.class,
                () -> new PlotCommand().run(List.of("m.jsonl", "--out", "x.png"), new Context(dir)));
        assertTrue(e.getMessage().startsWith(dir.resolve("m.jsonl") + ":2: expected one JSON object per line"), e.getMessage());
    }

    @Test
    void missingArgumentsAndUnknownMetricsAreInputErrors(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("m.jsonl"), "{\"loss\":1,\"num_tokens\":5}\n");
        assertTrue(assertThrows(InputException.class, () -> new PlotCommand().run(List.of("m.jsonl"), new Context(dir)))
                .getMessage().contains("--out is missing"));
        assertTrue(assertThrows(InputException.class,
                () -> new PlotCommand().run(List.of("m.jsonl", "--out", "a.png", "--metrics", "reward"), new Context(dir)))
                .getMessage().contains("expected --metrics from those in the file (loss), found reward, which occurs in no record"));
        Files.writeString(dir.resolve("two.jsonl"), "{\"step\":1,\"loss\":1,\"learning_rate\":0.1,\"num_tokens\":5}\n");
        assertTrue(assertThrows(InputException.class,
                () -> new PlotCommand().run(List.of("two.jsonl", "--out", "a.png", "--metrics", "los"), new Context(dir)))
                .getMessage().endsWith("two.jsonl: expected --metrics from those in the file (learning_rate, loss, step), "
                        + "found los, which occurs in no record with num_tokens"));
        assertTrue(assertThrows(InputException.class,
                () -> new PlotCommand().run(List.of("nope.jsonl", "--out", "a.png"), new Context(dir)))
                .getMessage().contains("no metrics file"));
    }
}
