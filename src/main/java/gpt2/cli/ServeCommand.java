package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.serve.Server;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Watch and use what you train: a web page with every run under --runs (live loss, val loss, learning "
                + "rate, gradient norm, tokens/s, samples, checkpoints, a generation panel) and an OpenAI-style API "
                + "(POST /v1/completions, GET /v1/models) over their checkpoints. Reads the run folders, never writes them.",
                "Example: gpt2 serve --runs runs/     (then open http://127.0.0.1:8000/)"})
final class ServeCommand implements Callable<Integer> {

    @Option(names = "--runs", defaultValue = "runs", paramLabel = "DIR",
            description = "The folder whose run folders (gpt2 train --output_dir) are shown, up to 3 levels down (default: ${DEFAULT-VALUE}).")
    Path runs;

    @Option(names = "--port", defaultValue = "8000", description = "Port (0: any free one) (default: ${DEFAULT-VALUE}).")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1",
            description = "Address to listen on (default: ${DEFAULT-VALUE}, this machine only); any other needs --token.")
    String host;

    @Option(names = "--token", paramLabel = "TOKEN",
            description = "A secret every request must carry (Authorization: Bearer TOKEN, or open /?token=TOKEN once); "
                    + "at least 16 characters (default: $GPT2_SERVE_TOKEN).")
    String token;

    @Option(names = {"--max_models", "--max-models"}, defaultValue = "2", paramLabel = "N",
            description = "Models kept loaded; the least recently used is freed beyond it (default: ${DEFAULT-VALUE}).")
    int maxModels;

    @Option(names = {"--max_queue", "--max-queue"}, defaultValue = "4", paramLabel = "N",
            description = "Generations waiting behind the one running; more are refused with 429 (default: ${DEFAULT-VALUE}).")
    int maxQueue;

    @Option(names = {"--max_tokens", "--max-tokens"}, defaultValue = "512", paramLabel = "N",
            description = "Largest max_tokens a completion may ask for (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = {"--max_watchers", "--max-watchers"}, defaultValue = "16", paramLabel = "N",
            description = "Pages watching live at once (default: ${DEFAULT-VALUE}).")
    int maxWatchers;

    @Option(names = {"--poll_ms", "--poll-ms"}, defaultValue = "1000", paramLabel = "MS",
            description = "How often the run folders are looked at for changes (default: ${DEFAULT-VALUE}).")
    long pollMillis;

    @Mixin
    DeviceOptions dev;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        if (token == null) token = System.getenv("GPT2_SERVE_TOKEN");
        if (maxWatchers < 1) throw new IllegalArgumentException("--max_watchers must be >= 1, got " + maxWatchers);
        if (pollMillis < 50) throw new IllegalArgumentException("--poll_ms must be >= 50, got " + pollMillis);
        if (dev.device.isEmpty()) dev.device = "cpu"; // the GPU is for training; ask for it with --device cuda
        dev.check();
        try (Backend be = dev.backend(false);
             Server server = new Server(new Server.Options(runs, host, port, token, maxModels, maxQueue, maxTokens, maxWatchers,
                     pollMillis), dir -> ModelSource.load(dir.toString(), be, err))) {
            out.printf("serving the runs under %s at %s on %s (Ctrl-C stops)%n", server.runs(), server.url(), be.name());
            if (token != null && !token.isEmpty()) out.printf("open %s?token=... once in a browser; API clients send "
                    + "'Authorization: Bearer ...'%n", server.url());
            out.flush();
            CountDownLatch stop = new CountDownLatch(1);
            Runtime.getRuntime().addShutdownHook(new Thread(stop::countDown));
            stop.await();
        }
        return 0;
    }
}
