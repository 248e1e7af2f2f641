package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.io.FakeHub;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.ModelFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `gpt2 download` in a child JVM whose environment points at a Hub on 127.0.0.1. */
class DownloadCommandTest {

    /** Runs gpt2 in a child JVM with extra environment variables; returns {exit code, output}. */
    static String[] child(Map<String, String> env, String... args) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(ReliabilityTest.gpt2Command(List.of(), List.of(args))).redirectErrorStream(true);
        for (String v : List.of("HF_ENDPOINT", "HF_TOKEN", "HF_HOME", "HF_TOKEN_PATH", "HF_HUB_OFFLINE")) pb.environment().remove(v);
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), out);
        return new String[]{String.valueOf(p.exitValue()), out};
    }

    /** A small GPT-2 in Hugging Face's format, as files. */
    static Map<String, byte[]> tinyGpt2(Path dir) throws Exception {
        GptConfig c = GptConfig.preset("gpt2").with(b -> b.numLayers(1).numHeads(2).channels(32).vocabSize(512).maxSeqLen(64));
        try (Backend be = Backends.create("cpu", 1, false); Gpt2 m = new Gpt2(c, be)) {
            m.initialize(5);
            ModelFiles.export(m, dir, ModelFiles.Format.HF, false);
        }
        return Map.of("config.json", Files.readAllBytes(dir.resolve("config.json")),
                "model.safetensors", Files.readAllBytes(dir.resolve("model.safetensors")), "README.md", "a model".getBytes());
    }

    @Test
    void downloadsAGpt2FolderThatSampleTakes(@TempDir Path dir) throws Exception {
        try (FakeHub hub = new FakeHub()) {
            Map<String, byte[]> files = tinyGpt2(dir.resolve("src"));
            hub.add("models", "someone/tiny-gpt2", true, files);
            hub.cutOnce.add("model.safetensors");
            Path to = dir.resolve("models/tiny");
            Map<String, String> env = Map.of("HF_ENDPOINT", hub.url(), "HF_TOKEN", FakeHub.TOKEN);
            String[] r = child(env, "download", "someone/tiny-gpt2", "--to", to.toString());
            assertEquals("0", r[0], r[1]);
            assertTrue(r[1].contains("someone/tiny-gpt2: ") && r[1].contains("use it with --model " + to), r[1]);
            assertFalse(r[1].contains(FakeHub.TOKEN), "the token was printed");
            assertTrue(java.util.Arrays.equals(files.get("model.safetensors"), Files.readAllBytes(to.resolve("model.safetensors"))));
            assertFalse(Files.exists(to.resolve("README.md")), "only the model's files");
            r = child(Map.of(), "sample", "--model", to.toString(), "--max_new_tokens", "5", "--device", "cpu");
            assertEquals("0", r[0], r[1]);
            assertTrue(r[1].contains("5 tokens in"), r[1]);
            // offline: the folder is already there, nothing is fetched
            int requests = hub.log.size();
            r = child(Map.of("HF_ENDPOINT", hub.url(), "HF_HUB_OFFLINE", "1"), "download", "someone/tiny-gpt2", "--to", to.toString());
            assertEquals("0", r[0], r[1]);
            assertEquals(requests, hub.log.size());
            // without the token the gated repo is refused in one line
            r = child(Map.of("HF_ENDPOINT", hub.url(), "HF_HOME", dir.toString()), "download", "someone/tiny-gpt2", "--to",
                    dir.resolve("other").toString());
            assertEquals("1", r[0], r[1]);
            assertTrue(r[1].contains("HTTP 401") && r[1].contains("set HF_TOKEN"), r[1]);
        }
    }
}
