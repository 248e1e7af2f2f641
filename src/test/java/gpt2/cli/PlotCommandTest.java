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

    @Test
    void comparesSeveralRunsInOneChartAndPrintsTheTokenRatio(@TempDir Path dir) throws Exception {
        Path a = gpt2.train.RunComparisonTest.run(dir, "gpt2", 100, 256, s -> 8 - s / 25.0);
        Path b = gpt2.train.RunComparisonTest.run(dir, "modern", 100, 256, s -> 8 - s / 10.0);
        Path png = dir.resolve("recipes.png");
        String[] r = InfoCommandTest.run("plot", a.toString(), b.toString(), "--out", png.toString());
        assertEquals("0", r[0], r[2]);
        // gpt2 ends at 4.0 after 25,600 tokens; modern is at 4.0 at step 40 = 10,240 tokens
        assertTrue(r[1].contains("      10,240 |       6.4000 |       4.0000"), r[1]); // the curves side by side (step 40)
        assertTrue(r[1].contains("modern reaches gpt2's final val loss 4.0000 at 10,240 tokens: 0.400 of gpt2's 25,600 tokens"), r[1]);
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(1000, img.getWidth());
        boolean blue = false, red = false;
        for (int x = 0; x < img.getWidth(); x += 2) {
            for (int y = 0; y < img.getHeight(); y += 2) {
                int rgb = img.getRGB(x, y), rr = (rgb >> 16) & 255, g = (rgb >> 8) & 255, bb = rgb & 255;
                blue |= rr == 0x1f && g == 0x77 && bb == 0xb4;
                red |= rr == 0xd6 && g == 0x27 && bb == 0x28;
            }
        }
        assertTrue(blue && red, "expected both runs' validation lines");
        // default place: beside the first run; a bad --out is one line
        r = InfoCommandTest.run("plot", a.toString(), b.toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(Files.isRegularFile(dir.resolve("compare.png")));
        r = InfoCommandTest.run("plot", a.toString(), b.toString(), "--out", dir.resolve("x/y.png").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("no such folder"), r[2]);
    }
}
