package gpt2.train;

import com.fasterxml.jackson.databind.JsonNode;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Draws train and validation loss against step from a run's metrics.jsonl into loss.png; or several
 * runs' curves against tokens seen into one PNG, to compare recipes.
 */
public final class LossPlot {
    private LossPlot() {
    }

    public static final String FILE = "loss.png";

    /** Returns the PNG written; an error names the run directory when there is nothing to plot. */
    public static Path draw(Path runDir) {
        System.setProperty("java.awt.headless", "true");
        Path metrics = runDir.resolve(RunLog.METRICS);
        XYSeries train = new XYSeries("train loss"), val = new XYSeries("val loss");
        for (JsonNode r : RunComparison.readMetrics(runDir)) {
            int step = r.path("step").asInt();
            if (r.has("loss")) train.add(step, r.get("loss").asDouble());
            if (r.has("val_loss")) val.add(step, r.get("val_loss").asDouble());
        }
        try {
            if (train.isEmpty() && val.isEmpty()) throw new IllegalArgumentException(metrics + ": no losses to plot");
            XYSeriesCollection data = new XYSeriesCollection();
            data.addSeries(train);
            if (!val.isEmpty()) data.addSeries(val);
            JFreeChart chart = ChartFactory.createXYLineChart("loss: " + runDir.toAbsolutePath().normalize().getFileName(),
                    "step", "loss", data, PlotOrientation.VERTICAL, true, false, false);
            var plot = chart.getXYPlot();
            plot.setBackgroundPaint(java.awt.Color.WHITE);
            plot.setRangeGridlinePaint(java.awt.Color.LIGHT_GRAY);
            plot.setDomainGridlinePaint(java.awt.Color.LIGHT_GRAY);
            ((org.jfree.chart.axis.NumberAxis) plot.getRangeAxis()).setAutoRangeIncludesZero(false);
            Path out = runDir.resolve(FILE);
            Path tmp = runDir.resolve(FILE + ".tmp");
            ChartUtils.saveChartAsPNG(tmp.toFile(), chart, 900, 540);
            Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(runDir + ": cannot draw the loss plot: " + e.getMessage(), e);
        }
    }

    /**
     * Every run's validation loss (solid) and train loss (thin) against tokens seen, in one chart
     * written to {@code out} (through a temporary file, so a failed draw leaves the old one).
     */
    public static Path drawComparison(List<RunComparison.Curves> runs, Path out, String title) {
        System.setProperty("java.awt.headless", "true");
        XYSeriesCollection data = new XYSeriesCollection();
        for (RunComparison.Curves c : runs) {
            XYSeries val = new XYSeries(c.name() + " val"), train = new XYSeries(c.name() + " train");
            for (int i = 0; i < c.valTokens().length; i++) val.add(c.valTokens()[i], c.valLoss()[i]);
            for (int i = 0; i < c.trainTokens().length; i++) train.add(c.trainTokens()[i], c.trainLoss()[i]);
            data.addSeries(val);
            data.addSeries(train);
        }
        JFreeChart chart = ChartFactory.createXYLineChart(title, "tokens", "loss", data, PlotOrientation.VERTICAL,
                true, false, false);
        var plot = chart.getXYPlot();
        plot.setBackgroundPaint(java.awt.Color.WHITE);
        plot.setRangeGridlinePaint(java.awt.Color.LIGHT_GRAY);
        plot.setDomainGridlinePaint(java.awt.Color.LIGHT_GRAY);
        ((org.jfree.chart.axis.NumberAxis) plot.getRangeAxis()).setAutoRangeIncludesZero(false);
        var renderer = plot.getRenderer();
        java.awt.Color[] colors = {new java.awt.Color(0x1f77b4), new java.awt.Color(0xd62728), new java.awt.Color(0x2ca02c),
                new java.awt.Color(0x9467bd)};
        for (int r = 0; r < runs.size(); r++) {
            java.awt.Color col = colors[r % colors.length];
            renderer.setSeriesPaint(2 * r, col);
            renderer.setSeriesStroke(2 * r, new java.awt.BasicStroke(2.5f));
            renderer.setSeriesPaint(2 * r + 1, new java.awt.Color(col.getRed(), col.getGreen(), col.getBlue(), 90));
            renderer.setSeriesStroke(2 * r + 1, new java.awt.BasicStroke(0.8f));
        }
        Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
        try {
            ChartUtils.saveChartAsPNG(tmp.toFile(), chart, 1000, 600);
            Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot draw the comparison: " + e.getMessage(), e);
        }
    }
}
