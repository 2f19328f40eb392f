package io.anneal.schedules.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import io.anneal.api.cli.Charts;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.testkit.TestConfig;
import io.anneal.schedules.TestExtensions;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CommandsTest {
    @TempDir
    Path dir;
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final List<Charts.Series> plotted = new ArrayList<>();
    Charts.Axis plottedXAxis;

    private final CommandContext context = new CommandContext() {
        final PrintStream print = new PrintStream(out, true, StandardCharsets.UTF_8);

        @Override public PrintStream out() { return print; }
        @Override public PrintStream err() { return print; }

        @Override
        public ConfigView loadConfig(Path file) {
            try {
                return TestConfig.file(Files.readString(file));
            } catch (java.io.IOException e) {
                throw new InputException(file + ": cannot read");
            }
        }

        @Override public ExtensionContext extensions() { return new TestExtensions(dir); }

        @Override
        public Charts charts() {
            return (png, title, xLabel, xAxis, yLabel, yAxis, series) -> {
                plotted.addAll(series);
                plottedXAxis = xAxis;
            };
        }

        @Override public Path workingDirectory() { return dir; }
    };

    private String output() {
        return out.toString(StandardCharsets.UTF_8);
    }

    @Test
    void valuesPrintsOneLinePerTokenCount() throws Exception {
        Files.writeString(dir.resolve("falcon.conf"), "schedule { type = wsd }\n");
        assertEquals(0, new ScheduleCommand().run(List.of("values", "falcon.conf", "--at", "25M,50M,1.55G,3.05G"), context));
        String[] lines = output().trim().split("\\R");
        assertEquals(4, lines.length);
        assertEquals("25M", lines[0].split(" ")[0]);
        assertEquals(64e-6, Double.parseDouble(lines[0].split(" ")[1]), 1e-17);
        assertEquals(128e-6, Double.parseDouble(lines[1].split(" ")[1]), 1e-17);
        assertEquals(128e-6, Double.parseDouble(lines[2].split(" ")[1]), 1e-17);
        assertEquals("3.05G", lines[3].split(" ")[0]);
        assertEquals(16e-6, Double.parseDouble(lines[3].split(" ")[1]), 1e-17);
    }

    @Test
    void plotDrawsEverySchedulesOnATokensAxis() throws Exception {
        Files.writeString(dir.resolve("two.conf"), "schedules { wsd { type = wsd }, cosine { type = cosine, total = 3.05G } }\n");
        new ScheduleCommand().run(List.of("plot", "two.conf", "--out", "lr.png", "--points", "10"), context);
        assertEquals(2, plotted.size());
        assertEquals("cosine", plotted.get(0).name()); // schedules are taken by name
        assertEquals("wsd", plotted.get(1).name());
        assertEquals(Charts.Axis.TOKENS, plottedXAxis);
        assertEquals(11, plotted.get(0).x().length);
        assertEquals(128e-6, plotted.get(0).y()[0], 1e-18); // cosine without warmup starts at the peak
    }

    @Test
    void boundPrintsTheOptimalPeakAndTheTransfer() throws Exception {
        Files.writeString(dir.resolve("b.conf"), "schedules { constant { type = constant, total = 100 }, linear { type = linear, total = 100 } }\n");
        new ScheduleCommand().run(List.of("bound", "b.conf", "--batch", "1"), context);
        String text = output();
        assertTrue(text.contains("constant: 100 steps"), text);
        assertTrue(text.contains("linear: 100 steps"), text);
        assertTrue(text.contains("constant's peak"), text);
    }

    @Test
    void lrScaleTable() {
        new LrScaleCommand().run(List.of("--batch", "250K,1M,4M"), context);
        String[] lines = output().trim().split("\\R");
        assertEquals("batch  peak-lr", lines[0]);
        // 128e-6 * sqrt(0.25), * 1, * sqrt(4) (seed 000)
        double[] expected = {64e-6, 128e-6, 256e-6};
        double[] found = new double[3];
        for (int i = 0; i < 3; i++) {
            found[i] = Double.parseDouble(lines[i + 1].split("\\s+")[1]);
        }
        assertArrayEquals(expected, found, 1e-15);
    }

    @Test
    void badArgumentsAreInputErrorsWithUsage() throws Exception {
        Files.writeString(dir.resolve("f.conf"), "schedule { type = wsd }\n");
        InputException unknown = assertThrows(InputException.class,
                () -> new ScheduleCommand().run(List.of("values", "f.conf", "--at", "1M", "--colour", "red"), context));
        assertTrue(unknown.getMessage().contains("unknown option --colour") && unknown.getMessage().contains("usage:"), unknown.getMessage());
        assertThrows(InputException.class, () -> new ScheduleCommand().run(List.of("draw", "f.conf"), context));
        assertThrows(InputException.class, () -> new ScheduleCommand().run(List.of("values", "f.conf", "--at", "lots"), context));
        assertThrows(InputException.class, () -> new LrScaleCommand().run(List.of("--batch", "0"), context));
        Files.writeString(dir.resolve("empty.conf"), "model { }\n");
        InputException none = assertThrows(InputException.class,
                () -> new ScheduleCommand().run(List.of("values", "empty.conf", "--at", "1M"), context));
        assertTrue(none.getMessage().contains("expected a block schedule"), none.getMessage());
        assertEquals(0, new LrScaleCommand().run(List.of("--help"), context));
        assertTrue(output().contains("usage: anneal lr-scale"));
    }

    @Test
    void aPipelineGivesEachStagesScheduleByStageName() throws Exception {
        Files.writeString(dir.resolve("p.conf"), "pipeline.name = p\nstages = [\n"
                + "  { name = sft-16k, type = sft, schedule { type = wsd } }\n"
                + "  { type = sft, schedule { type = constant, peak-lr = 16e-6 } }\n"
                + "  { type = other }\n]\n");
        assertEquals(0, new ScheduleCommand().run(List.of("values", "p.conf", "--at", "3.05G"), context));
        assertEquals(List.of("sft-16k 3.05G 1.60000000000e-05", "sft 3.05G 1.60000000000e-05"), output().lines().toList());
        out.reset();
        assertEquals(0, new ScheduleCommand().run(List.of("values", "p.conf", "--at", "25M", "--stage", "sft-16k"), context));
        assertEquals(List.of("25M 6.40000000000e-05"), output().lines().toList());
        InputException unknown = assertThrows(InputException.class,
                () -> new ScheduleCommand().run(List.of("values", "p.conf", "--at", "1M", "--stage", "dpo"), context));
        assertEquals(dir.resolve("p.conf") + ": --stage dpo: expected one of sft-16k, sft, found no schedule of that name",
                unknown.getMessage());
    }
}
