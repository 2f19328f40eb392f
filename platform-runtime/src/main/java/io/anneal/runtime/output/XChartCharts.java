package io.anneal.runtime.output;

import io.anneal.api.cli.Charts;
import io.anneal.api.units.TokenCount;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;

/** {@link Charts} drawn with XChart as PNG files; a token axis is labelled in K/M/G units. */
public final class XChartCharts implements Charts {
    private static final int WIDTH = 900;
    private static final int HEIGHT = 540;

    @Override
    public void linePlot(Path png, String title, String xLabel, Axis xAxis, String yLabel, Axis yAxis, List<Series> series)
            throws IOException {
        try {
            draw(png, title, xLabel, xAxis, yLabel, yAxis, series);
        } catch (Error e) {
            // AWT's font manager on a JRE without fonts (UnsatisfiedLinkError, InternalError, AWTError)
            throw drawingFailed(png, e);
        }
    }

    /** A chart that Java's graphics cannot draw: the file and the likely cure, without a class name. */
    static IOException drawingFailed(Path png, Throwable e) {
        String reason = e.getMessage() == null || e.getMessage().isBlank() ? "no message" : e.getMessage();
        return new IOException("cannot draw " + png + ": the Java runtime could not render the chart (" + reason + "); a JRE "
                + "without fonts needs a font package, such as fontconfig and fonts-dejavu-core on Debian or Ubuntu", e);
    }

    private void draw(Path png, String title, String xLabel, Axis xAxis, String yLabel, Axis yAxis, List<Series> series)
            throws IOException {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(xLabel).yAxisTitle(yLabel).build();
        chart.getStyler().setMarkerSize(0);
        chart.getStyler().setXAxisLogarithmic(xAxis == Axis.LOG);
        chart.getStyler().setYAxisLogarithmic(yAxis == Axis.LOG);
        if (xAxis == Axis.TOKENS) {
            chart.getStyler().setxAxisTickLabelsFormattingFunction(tokenLabel());
        }
        if (yAxis == Axis.TOKENS) {
            chart.getStyler().setyAxisTickLabelsFormattingFunction(tokenLabel());
        }
        for (Series s : series) {
            XYSeries line = chart.addSeries(s.name(), s.x(), s.y());
            line.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
        }
        Path parent = png.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        String name = png.toString();
        String base = name.endsWith(".png") ? name.substring(0, name.length() - 4) : name;
        BitmapEncoder.saveBitmap(chart, base, BitmapEncoder.BitmapFormat.PNG);
    }

    /**
     * Tick labels of a token axis in K/M/G units with at most three significant digits:
     * 50000000 -> 50M, 3014656 -> 3.01M (ticks fall on arbitrary token counts, so exact forms such
     * as 3014.656K would be unreadable).
     */
    static Function<Double, String> tokenLabel() {
        return v -> TokenCount.formatRounded(v, 3);
    }
}
