package gpt2.cli;

import gpt2.data.Progress;
import gpt2.io.HfFormat;
import gpt2.io.Hub;
import gpt2.model.GptConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** GPT-2 weights from the Hugging Face Hub into a folder every --model accepts. */
@Command(name = "download", mixinStandardHelpOptions = true,
        description = {"Download GPT-2 weights from the Hugging Face Hub (config.json and model.safetensors, resumable, "
                + "checked against the Hub's sizes and hashes) into a folder that --model accepts.",
                "Example: gpt2 download gpt2 && gpt2 hellaswag --model models/gpt2"})
final class DownloadCommand implements Callable<Integer> {

    /** OpenAI's GPT-2 sizes on the Hub. */
    static final Map<String, String> OPENAI = Map.of("gpt2", "openai-community/gpt2",
            "gpt2-medium", "openai-community/gpt2-medium", "gpt2-large", "openai-community/gpt2-large",
            "gpt2-xl", "openai-community/gpt2-xl");

    static final List<String> FILES = List.of(HfFormat.CONFIG, HfFormat.WEIGHTS);

    @Parameters(index = "0", paramLabel = "MODEL",
            description = "gpt2, gpt2-medium, gpt2-large, gpt2-xl (OpenAI's weights), or a Hub repo id (owner/name) holding a "
                    + "GPT-2 config.json and model.safetensors.")
    String model;

    @Option(names = "--to", paramLabel = "DIR", description = "Where the files go (default: models/<name>).")
    Path to;

    @Option(names = "--revision", defaultValue = "main", paramLabel = "REV",
            description = "Branch, tag or commit of the repo (default: ${DEFAULT-VALUE}).")
    String revision;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        String repo = OPENAI.getOrDefault(model, model);
        if (!repo.matches("[\\w.-]+/[\\w.-]+")) {
            throw new IllegalArgumentException("MODEL " + model + ": expected gpt2, gpt2-medium, gpt2-large, gpt2-xl or a "
                    + "Hub repo id (owner/name)");
        }
        Path dir = to != null ? to : Path.of("models", repo.substring(repo.indexOf('/') + 1));
        Hub hub = Hub.fromEnvironment();
        List<Hub.RepoFile> listing = hub.listOrLocal("models", repo, revision, "", dir), files = new ArrayList<>();
        for (String name : FILES) {
            files.add(listing.stream().filter(f -> f.path().equals(name)).findFirst().orElseThrow(() -> hub.offline()
                    ? new IllegalStateException("HF_HUB_OFFLINE=1: " + dir.resolve(name) + " is not downloaded yet")
                    : new IllegalArgumentException(repo + " has no " + name + " (not a GPT-2 repo in safetensors? files: "
                    + listing.stream().map(Hub.RepoFile::path).limit(8).toList() + ")")));
        }
        long total = files.stream().mapToLong(Hub.RepoFile::size).sum();
        try (Progress bar = new Progress("download", total, "B")) {
            for (Hub.RepoFile f : files) hub.download("models", repo, revision, f, dir.resolve(f.path()), bar::step);
        }
        GptConfig c = HfFormat.readConfig(dir);
        spec.commandLine().getOut().printf("%s: %,d parameters (%s) in %s; use it with --model %s%n", repo, c.parameterCount(),
                c.shape(), dir, dir);
        return 0;
    }

}
