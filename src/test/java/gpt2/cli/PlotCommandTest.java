package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PlotCommandTest {

    @Test
    void drawsAPngFromMetrics(@TempDir Path dir) throws Exception {
        StringBuilder sb = new StringBuilder();
        for (int s = 0; s < 50; s++) {
            sb.append("{\"step\":").append(s).append(",\"loss\":").append(10.0 - s * 0.1);
            if (s % 10 == 0) sb.append(",\"val_loss\":").append(10.2 - s * 0.1);
            sb.append("}\n");
        }
        Files.writeString(dir.resolve("metrics.jsonl"), sb);
        String[] r = InfoCommandTest.run("plot", dir.toString());
        assertEquals("0", r[0], r[2]);
        Path png = dir.resolve("loss.png");
        long size = Files.size(png);
        assertTrue(size > 10_000 && size < 2_000_000, "PNG of " + size + " bytes");
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(900, img.getWidth());
        assertEquals(540, img.getHeight());
        // both series are drawn: some red (train) and some blue (val) pixels
        boolean red = false, blue = false;
        for (int x = 0; x < img.getWidth(); x += 2) {
            for (int y = 0; y < img.getHeight(); y += 2) {
                int rgb = img.getRGB(x, y), rr = (rgb >> 16) & 255, g = (rgb >> 8) & 255, b = rgb & 255;
                red |= rr > 200 && g < 100 && b < 100;
                blue |= b > 200 && rr < 100 && g < 100;
            }
        }
        assertTrue(red && blue, "expected a train (red) and a val (blue) line");
    }

    @Test
    void missingMetricsIsAnError(@TempDir Path dir) {
        String[] r = InfoCommandTest.run("plot", dir.toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("no metrics.jsonl"), r[2]);
    }
}
