package io.anneal.runtime.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.cli.Charts;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class XChartChartsTest {

    @Test
    void tokenTickLabelsUseUnitsWithThreeSignificantDigits() {
        Function<Double, String> label = XChartCharts.tokenLabel();
        assertEquals("50M", label.apply(50_000_000.0));
        assertEquals("1.55G", label.apply(1_550_000_000.0));
        assertEquals("3.01M", label.apply(3_014_656.0));
        assertEquals("65.5K", label.apply(65_536.0));
        assertEquals("512", label.apply(512.0));
        assertEquals("-2M", label.apply(-2_000_000.0));
    }

    @Test
    void writesAPngFile(@TempDir Path tmp) throws Exception {
        Path png = tmp.resolve("lr.png");
        new XChartCharts().linePlot(png, "lr", "tokens", Charts.Axis.TOKENS, "lr", Charts.Axis.LINEAR,
                List.of(new Charts.Series("wsd", new double[] {0, 5e7, 1.55e9}, new double[] {0, 1.28e-4, 1.28e-4})));
        byte[] bytes = Files.readAllBytes(png);
        assertTrue(bytes.length > 1000);
        assertEquals((byte) 0x89, bytes[0]);
        assertEquals('P', bytes[1]);
        assertEquals('N', bytes[2]);
        assertEquals('G', bytes[3]);
    }

    @Test
    void aJreWithoutFontsIsOneMessageNamingTheFileWithoutAClassName() {
        java.io.IOException e = XChartCharts.drawingFailed(Path.of("loss.png"),
                new UnsatisfiedLinkError("libfontmanager.so: libfreetype.so.6: cannot open shared object file"));
        assertTrue(e.getMessage().startsWith("cannot draw loss.png: the Java runtime could not render the chart (libfontmanager.so"),
                e.getMessage());
        assertTrue(e.getMessage().contains("font package") && !e.getMessage().contains("Error"), e.getMessage());
    }
}
