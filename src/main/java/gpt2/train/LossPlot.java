package gpt2.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Draws train and validation loss against step from a run's metrics.jsonl into loss.png. */
public final class LossPlot {
    private LossPlot() {
    }

    public static final String FILE = "loss.png";

    /** Returns the PNG written; an error names the run directory when there is nothing to plot. */
    public static Path draw(Path runDir) {
        System.setProperty("java.awt.headless", "true");
        Path metrics = runDir.resolve(RunLog.METRICS);
        if (!Files.isRegularFile(metrics)) {
            throw new IllegalArgumentException(runDir + ": no " + RunLog.METRICS + " (is this a run directory made by 'gpt2 train --output_dir'?)");
        }
        XYSeries train = new XYSeries("train loss"), val = new XYSeries("val loss");
        ObjectMapper json = new ObjectMapper();
        try {
            int n = 0;
            for (String line : Files.readAllLines(metrics, StandardCharsets.UTF_8)) {
                n++;
                if (line.isBlank()) continue;
                JsonNode r;
                try {
                    r = json.readTree(line);
                } catch (IOException e) {
                    throw new IllegalArgumentException(metrics + ": line " + n + " is not JSON");
                }
                int step = r.path("step").asInt();
                if (r.has("loss")) train.add(step, r.get("loss").asDouble());
                if (r.has("val_loss")) val.add(step, r.get("val_loss").asDouble());
            }
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
}
