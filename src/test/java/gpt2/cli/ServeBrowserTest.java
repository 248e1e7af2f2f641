package gpt2.cli;

import com.fasterxml.jackson.databind.JsonNode;
import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.serve.Server;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 29: the dashboard in a real browser (headless Chromium): it lists the runs, its loss chart
 * gains a point when a line is appended to a running run's metrics.jsonl, a run started after the
 * page was opened appears by itself, and text generated from a trained checkpoint streams into the
 * generation panel. The screenshot goes to target/serve-dashboard.png (docs/ holds one).
 */
class ServeBrowserTest {

    @Test
    void theDashboardFollowsTrainingAndGenerates(@TempDir Path tmp) throws Exception {
        String why = HeadlessChrome.unavailable();
        if (why != null) System.out.println("ServeBrowserTest skipped: " + why);
        Assumptions.assumeTrue(why == null, why);

        Path data = TrainCommandTest.shards(Files.createDirectories(tmp.resolve("data")));
        Path runs = Files.createDirectories(tmp.resolve("runs"));
        String[] r = InfoCommandTest.run(TrainCommandTest.args(data, runs.resolve("trained"), "--num_iterations", "6",
                "--save_every_niter", "3", "--val_loss_every", "2", "--sample_every", "3", "--vocab_size", "50257"));
        assertEquals("0", r[0], r[2]);
        // a run "in progress": this process is its trainer (pid alive), three steps logged so far
        Path live = Files.createDirectories(runs.resolve("live"));
        Files.writeString(live.resolve("run.json"), "{\"state\": \"running\", \"model\": \"d12\", \"num_iterations\": 100, "
                + "\"pid\": " + ProcessHandle.current().pid() + ", \"host\": \"" + gpt2.train.RunStatus.host() + "\"}");
        StringBuilder lines = new StringBuilder();
        for (int s = 1; s <= 3; s++) lines.append(record(s));
        Files.writeString(live.resolve("metrics.jsonl"), lines);

        try (Backend be = Backends.create("cpu", 2, false, false);
             Server server = new Server(new Server.Options(runs, "127.0.0.1", 0, null, 2, 2, 64, 4, 200),
                     dir -> ModelSource.load(dir.toString(), be, new PrintWriter(new StringWriter())));
             HeadlessChrome chrome = new HeadlessChrome(tmp.resolve("chromedriver.log"))) {
            chrome.open(server.url());
            chrome.await("return document.querySelectorAll('#runs tbody tr').length", v -> v.asInt() == 2, Duration.ofSeconds(30),
                    "the two runs listed");
            JsonNode state = chrome.script("return document.querySelector('tr[data-run=\"live\"] td:nth-child(4)').textContent");
            assertEquals("running", state.asText());
            int before = points(chrome);
            assertEquals(3 + 6, before, "live's 3 steps and trained's 6 on the loss chart");

            Files.writeString(live.resolve("metrics.jsonl"), record(4), StandardOpenOption.APPEND);
            chrome.await("return document.getElementById('chart-loss').dataset.points", v -> v.asInt() == before + 1,
                    Duration.ofSeconds(30), "the loss chart to gain the appended step");

            // CORE during training (train --eval_every) gets its own chart
            Files.writeString(live.resolve("metrics.jsonl"), "{\"step\": 4, \"eval_task\": \"copa\", \"accuracy\": 0.6, "
                    + "\"centered\": 0.2}\n{\"step\": 4, \"core\": 0.05}\n", StandardOpenOption.APPEND);
            chrome.await("return document.getElementById('chart-core').dataset.points", v -> v.asInt() == 1,
                    Duration.ofSeconds(30), "the CORE chart to show the run's CORE record");

            Path late = Files.createDirectories(runs.resolve("late"));
            Files.writeString(late.resolve("metrics.jsonl"), record(1) + record(2));
            chrome.await("return document.querySelector('tr[data-run=\"late\"]') !== null", JsonNode::asBoolean,
                    Duration.ofSeconds(30), "a run started after the page opened to appear");

            chrome.await("return document.getElementById('gen-model').options.length", v -> v.asInt() >= 2,
                    Duration.ofSeconds(30), "the trained run's checkpoints in the model list");
            chrome.script("document.getElementById('gen-model').value = 'trained/checkpoint_00000006';"
                    + "document.getElementById('gen-prompt').value = 'The river';"
                    + "document.getElementById('gen-max').value = '12';"
                    + "document.getElementById('gen-button').click();");
            JsonNode text = chrome.await("const o = document.getElementById('gen-output');"
                            + "return o.dataset.done === '1' ? o.textContent : null", v -> !v.isNull(), Duration.ofSeconds(60),
                    "generated text");
            assertTrue(text.asText().startsWith("The river") && text.asText().length() > "The river".length(), text.asText());
            String status = chrome.script("return document.getElementById('gen-status').textContent").asText();
            assertTrue(status.startsWith("done (length)"), status);

            chrome.script("document.querySelector('tr[data-run=\"trained\"] .run-name').click()");
            chrome.await("return document.querySelectorAll('#samples .sample').length", v -> v.asInt() == 3,
                    Duration.ofSeconds(30), "trained's samples (steps 0, 3, 6)");
            Path shot = Path.of("target", "serve-dashboard.png");
            Files.createDirectories(shot.getParent());
            chrome.screenshot(shot);
            assertTrue(Files.size(shot) > 10_000, "a screenshot of the page");
        }
    }

    private static int points(HeadlessChrome chrome) throws Exception {
        return chrome.await("return document.getElementById('chart-loss').dataset.points", v -> !v.isNull() && v.asInt() > 0,
                Duration.ofSeconds(30), "points on the loss chart").asInt();
    }

    private static String record(int step) {
        return String.format(java.util.Locale.ROOT, "{\"step\": %d, \"loss\": %.3f, \"lr\": 0.0006, \"ms\": 250.0, \"tok_s\": 2048.0, "
                + "\"tokens\": %d, \"norm\": 1.5}%n", step, 6.0 - 0.2 * step, step * 512);
    }
}
