package gpt2.cli;

import gpt2.data.DataLoader;
import gpt2.data.Download;
import gpt2.data.FineWebEdu;
import gpt2.data.HellaSwagData;
import gpt2.data.PrepareSummary;
import gpt2.data.TinyShakespeare;
import gpt2.io.Hub;
import gpt2.data.TokenShard;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

@Command(name = "prepare", mixinStandardHelpOptions = true,
        description = "Turn a dataset into token shards (or, for HellaSwag, a checked JSONL file).",
        subcommands = {PrepareCommand.Shakespeare.class, PrepareCommand.FineWeb.class, PrepareCommand.Text.class,
                PrepareCommand.CoreBundleCommand.class,
                PrepareCommand.HellaSwag.class})
final class PrepareCommand implements Runnable {

    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                "name a dataset: tinyshakespeare, fineweb-edu, text or hellaswag");
    }

    /** Options every dataset takes. */
    static final class Common {
        @Option(names = {"--output_dir", "--output-dir"}, paramLabel = "DIR",
                description = "Where the files go (default: data/<dataset>/).")
        Path outputDir;

        @Option(names = "--magic", defaultValue = "20240520", paramLabel = "N",
                description = "Shard header magic: 20240520 (llm.c, default) or 20250211 (the original project's).")
        int magic;

        Path dir(String dataset) {
            return outputDir != null ? outputDir : Path.of("data", dataset);
        }

        void checkMagic() {
            if (magic != TokenShard.MAGIC_LLMC && magic != TokenShard.MAGIC_SEED) {
                throw new IllegalArgumentException("--magic " + magic + ": must be " + TokenShard.MAGIC_LLMC + " or "
                        + TokenShard.MAGIC_SEED);
            }
        }
    }

    @Command(name = "tinyshakespeare", mixinStandardHelpOptions = true,
            description = "Tiny Shakespeare: tiny_shakespeare_val.bin (first 32,768 tokens) and tiny_shakespeare_train.bin.")
    static final class Shakespeare implements Callable<Integer> {
        @Mixin
        Common common;

        @Option(names = "--input", paramLabel = "FILE",
                description = "A local input.txt (default: $GPT2_TINYSHAKESPEARE, else <output_dir>/input.txt, else downloaded; "
                        + "without --input, shards already in <output_dir> with the same --magic are kept and nothing is fetched).")
        Path input;

        @Option(names = "--url", defaultValue = TinyShakespeare.URL, paramLabel = "URL", description = "Where to download from.")
        URI url;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            common.checkMagic();
            long start = System.nanoTime();
            Path dir = common.dir("tinyshakespeare");
            Path source = input;
            if (source == null) {
                Path val = dir.resolve(TinyShakespeare.VAL_FILE), train = dir.resolve(TinyShakespeare.TRAIN_FILE);
                if (Files.isRegularFile(val) && Files.isRegularFile(train)) {
                    try (TokenShard v = TokenShard.open(val); TokenShard t = TokenShard.open(train)) { // headers, sizes checked
                        if (v.magic() == common.magic && t.magic() == common.magic) {
                            spec.commandLine().getOut().printf("tinyshakespeare: the shards are already in %s (%,d tokens); "
                                    + "kept (pass --input FILE to make them again)%n", dir, v.size() + t.size());
                            return 0;
                        }
                    }
                }
                source = localCopy(dir);
            } else if (!Files.isRegularFile(source)) {
                throw new IllegalArgumentException("--input " + source + ": no such file");
            }
            String text = read(source);
            long[] dt = TinyShakespeare.writeShards(text, dir, common.magic);
            PrepareSummary s = new PrepareSummary("tinyshakespeare", dt[0], dt[1],
                    List.of(TinyShakespeare.VAL_FILE, TinyShakespeare.TRAIN_FILE), 0, (System.nanoTime() - start) / 1e9);
            report(spec, s, dir);
            return 0;
        }

        /**
         * input.txt from $GPT2_TINYSHAKESPEARE or the output folder, else downloaded there; when the
         * download fails too, the error names every place looked at and how to point at a copy.
         */
        private Path localCopy(Path dir) {
            String env = System.getenv("GPT2_TINYSHAKESPEARE");
            if (env != null && !env.isEmpty()) {
                if (!Files.isRegularFile(Path.of(env))) throw new IllegalArgumentException("GPT2_TINYSHAKESPEARE=" + env + ": no such file");
                return Path.of(env);
            }
            Path local = dir.resolve("input.txt");
            if (Files.isRegularFile(local)) return local;
            try {
                Download.fetch(url, local);
            } catch (RuntimeException e) {
                throw new IllegalStateException("no local input.txt (looked at $GPT2_TINYSHAKESPEARE: unset; "
                        + local + ": absent) and " + e.getMessage()
                        + "; offline, set GPT2_TINYSHAKESPEARE=FILE or pass --input FILE with a copy of input.txt", e);
            }
            return local;
        }
    }

    @Command(name = "fineweb-edu", mixinStandardHelpOptions = true,
            description = {"FineWeb-Edu (or any corpus) into shards: edu_fineweb_val_000000.bin, then edu_fineweb_train_NNNNNN.bin.",
                    "With no INPUT it downloads the 10BT sample (--remote) from the Hugging Face Hub into --raw_dir, "
                            + "several files at once, resumable and checked, and tokenizes each file as soon as it is complete.",
                    "Example: gpt2 prepare fineweb-edu                 (the 10BT sample, about 28 GB of parquet)",
                    "         gpt2 prepare fineweb-edu data/raw/fineweb-edu/sample/10BT   (local files)"})
    static final class FineWeb implements Callable<Integer> {
        @Mixin
        Common common;

        @Option(names = "--remote", defaultValue = "sample-10BT", paramLabel = "NAME",
                description = "With no INPUT: the subset to download: sample-10BT, sample-100BT, sample-350BT, or a folder of "
                        + "the dataset repo (default: ${DEFAULT-VALUE}).")
        String remote;

        @Option(names = "--repo", defaultValue = "HuggingFaceFW/fineweb-edu", paramLabel = "OWNER/NAME",
                description = "The Hub dataset repo to download from (default: ${DEFAULT-VALUE}).")
        String repo;

        @Option(names = {"--raw_dir", "--raw-dir"}, defaultValue = "data/raw/fineweb-edu", paramLabel = "DIR",
                description = "Where downloaded parquet files go, under their paths in the repo (default: ${DEFAULT-VALUE}).")
        Path rawDir;

        @Option(names = "--downloads", defaultValue = "4", paramLabel = "N",
                description = "Files downloaded at once (default: ${DEFAULT-VALUE}).")
        int downloads;

        @Mixin
        Tokenizing tok;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            common.checkMagic();
            Path dir = common.dir("fineweb-edu");
            FineWebEdu.Options options = tok.options(common, FineWebEdu.FINEWEB);
            if (tok.inputs().isEmpty()) return fromHub(dir, options);
            report(spec, FineWebEdu.prepare(tok.files(), dir, options), dir);
            return 0;
        }

        /**
         * The --remote subset from the Hub: the file list from the tree API, then the files
         * downloaded in the background (several at once, resumable, checked) while the tokenizer
         * takes each in order as soon as it is complete. HF_HUB_OFFLINE=1: the files already in
         * --raw_dir.
         */
        private int fromHub(Path dir, FineWebEdu.Options options) {
            if (downloads < 1) throw new IllegalArgumentException("--downloads must be >= 1, got " + downloads);
            String folder = remote.matches("sample-\\d+BT") ? "sample/" + remote.substring("sample-".length()) : remote;
            Hub hub = Hub.fromEnvironment();
            List<Hub.RepoFile> files = hub.listOrLocal("datasets", repo, "main", folder, rawDir).stream()
                    .filter(f -> f.path().endsWith(".parquet")).sorted(java.util.Comparator.comparing(Hub.RepoFile::path)).toList();
            if (files.isEmpty()) {
                throw new IllegalArgumentException("--remote " + remote + ": no parquet files under " + folder + " in " + repo);
            }
            long total = files.stream().mapToLong(Hub.RepoFile::size).sum();
            PrintWriter out = spec.commandLine().getOut();
            out.printf("fineweb-edu: %d parquet files, %s, from %s/%s into %s%n", files.size(), gpt2.data.Progress.size(total), repo,
                    folder, rawDir);
            out.flush();
            List<Path> targets = files.stream().map(f -> rawDir.resolve(f.path())).toList();
            List<java.util.concurrent.CompletableFuture<Void>> ready = new ArrayList<>();
            for (int i = 0; i < files.size(); i++) ready.add(new java.util.concurrent.CompletableFuture<>());
            Hub.Counter bytes = new Hub.Counter();
            java.util.concurrent.atomic.AtomicInteger complete = new java.util.concurrent.atomic.AtomicInteger();
            Thread downloader = new Thread(() -> {
                try {
                    hub.downloadAll("datasets", repo, "main", files, targets, downloads, bytes, i -> {
                        complete.incrementAndGet();
                        ready.get(i).complete(null);
                    });
                } catch (RuntimeException e) {
                    for (var f : ready) f.completeExceptionally(e);
                }
            }, "fineweb-download");
            downloader.setDaemon(true);
            downloader.start();
            List<FineWebEdu.InputFile> fingerprint = new ArrayList<>();
            for (int i = 0; i < files.size(); i++) {
                fingerprint.add(new FineWebEdu.InputFile(targets.get(i).toAbsolutePath().normalize().toString(), files.get(i).size(), 0));
            }
            FineWebEdu.Incoming incoming = new FineWebEdu.Incoming(fingerprint, i -> {
                try {
                    ready.get(i).join();
                } catch (java.util.concurrent.CompletionException e) {
                    throw e.getCause() instanceof RuntimeException re ? re : e;
                }
            }, () -> String.format(java.util.Locale.ROOT, "downloaded %s of %s (%d of %d files)", gpt2.data.Progress.size(bytes.get()),
                    gpt2.data.Progress.size(total), complete.get(), files.size()));
            PrepareSummary s = FineWebEdu.prepare(targets, dir, options, incoming);
            try {
                downloader.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            report(spec, s, dir);
            return 0;
        }
    }

    /** What tokenizing a corpus into shards takes: the inputs and how they are read and cut. */
    static final class Tokenizing {
        @Parameters(paramLabel = "INPUT", arity = "0..*",
                description = "Input files, folders (every .parquet, .jsonl and .txt inside) or globs in the file name.")
        List<String> positional = new ArrayList<>();

        @Option(names = "--input", paramLabel = "INPUT", description = "Same as the positional inputs (repeatable).")
        List<String> input = new ArrayList<>();

        @Option(names = {"--shard_size", "--shard-size"}, defaultValue = "100000000", paramLabel = "TOKENS",
                description = "Tokens per shard (default: ${DEFAULT-VALUE}).")
        long shardSize;

        @Option(names = "--threads", defaultValue = "0", paramLabel = "N",
                description = "Tokenizer threads; 0 means one per core. The output does not depend on it.")
        int threads;

        @Option(names = {"--text_column", "--text-column"}, defaultValue = "text", paramLabel = "NAME",
                description = "The text column (parquet) or field (JSONL) (default: ${DEFAULT-VALUE}).")
        String column;

        @Option(names = "--separator", defaultValue = "<|endoftext|>", paramLabel = "TEXT",
                description = "Document separator in plain-text inputs (default: ${DEFAULT-VALUE}).")
        String separator;

        List<String> inputs() {
            List<String> all = new ArrayList<>(positional);
            all.addAll(input);
            return all;
        }

        List<Path> files() {
            List<Path> files = new ArrayList<>();
            for (String in : inputs()) files.addAll(expand(in));
            return files;
        }

        FineWebEdu.Options options(Common common, String name) {
            int t = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
            return new FineWebEdu.Options(shardSize, t, common.magic, column, separator, name);
        }

        private static List<Path> expand(String in) {
            Path p = Path.of(in);
            if (Files.isRegularFile(p)) return List.of(p);
            if (Files.isDirectory(p)) {
                try (Stream<Path> s = Files.list(p)) {
                    List<Path> out = s.filter(f -> {
                        String n = f.getFileName().toString().toLowerCase();
                        return Files.isRegularFile(f) && (n.endsWith(".parquet") || n.endsWith(".jsonl") || n.endsWith(".txt"));
                    }).sorted().toList();
                    if (out.isEmpty()) throw new IllegalArgumentException(in + ": no .parquet, .jsonl or .txt files inside");
                    return out;
                } catch (IOException e) {
                    throw new UncheckedIOException(in + ": " + e.getMessage(), e);
                }
            }
            if (in.matches(".*[*?\\[{].*")) return DataLoader.glob(in);
            throw new IllegalArgumentException(in + ": no such file or folder");
        }
    }

    @Command(name = "text", mixinStandardHelpOptions = true,
            description = {"Your own corpus into shards: NAME_val_000000.bin (the validation split), then NAME_train_NNNNNN.bin.",
                    "Inputs: .txt (documents separated by --separator; a file without one is one document), .jsonl (a text "
                            + "field per line) or .parquet (a text column); files, folders of them, or globs.",
                    "Example: gpt2 prepare text --input ~/corpus/ --name mycorpus     (into data/mycorpus/)"})
    static final class Text implements Callable<Integer> {
        @Mixin
        Common common;

        @Mixin
        Tokenizing tok;

        @Option(names = "--name", defaultValue = "text", paramLabel = "NAME",
                description = "The set's name: the shards' prefix and the default folder data/NAME (default: ${DEFAULT-VALUE}).")
        String name;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            common.checkMagic();
            if (tok.inputs().isEmpty()) throw new IllegalArgumentException("--input: name the files or folders to tokenize");
            Path dir = common.dir(name);
            report(spec, FineWebEdu.prepare(tok.files(), dir, tok.options(common, name)), dir);
            return 0;
        }
    }

    @Command(name = "hellaswag", mixinStandardHelpOptions = true,
            description = "HellaSwag validation set: downloaded (or --input), every line checked, saved as hellaswag_val.jsonl.")
    static final class HellaSwag implements Callable<Integer> {
        @Option(names = {"--output_dir", "--output-dir"}, paramLabel = "DIR", description = "Default: data/hellaswag/.")
        Path outputDir;

        @Option(names = "--input", paramLabel = "FILE", description = "A local hellaswag_val.jsonl.")
        Path input;

        @Option(names = "--url", defaultValue = HellaSwagData.URL, paramLabel = "URL", description = "Where to download from.")
        URI url;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws IOException {
            long start = System.nanoTime();
            Path dir = outputDir != null ? outputDir : Path.of("data", "hellaswag");
            Path source = input;
            Path downloaded = null;
            if (source == null) {
                Files.createDirectories(dir);
                downloaded = Files.createTempFile(dir, "hellaswag", ".download");
                Download.fetch(url, downloaded);
                source = downloaded;
            } else if (!Files.isRegularFile(source)) {
                throw new IllegalArgumentException("--input " + source + ": no such file");
            }
            try {
                long n = HellaSwagData.install(source, dir);
                // examples, not tokens: the file is checked and kept as JSONL, tokenized when scored
                PrintWriter out = spec.commandLine().getOut();
                out.printf("hellaswag: %,d examples checked in %.1f s%n", n, (System.nanoTime() - start) / 1e9);
                out.println("wrote " + dir.resolve(HellaSwagData.FILE));
                out.flush();
            } finally {
                if (downloaded != null) Files.deleteIfExists(downloaded);
            }
            return 0;
        }
    }

    @Command(name = "core", mixinStandardHelpOptions = true,
            description = {"The DCLM eval bundle for gpt2 eval's CORE metric (nanochat's copy): downloaded with resume (or --input), "
                    + "checked (every task file its core.yaml names present, every row readable), saved as eval_bundle.zip.",
                    "Example: gpt2 prepare core     (into data/eval_bundle.zip)"})
    static final class CoreBundleCommand implements Callable<Integer> {
        static final String URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip";

        @Option(names = {"--output_dir", "--output-dir"}, paramLabel = "DIR", description = "Default: data/.")
        Path outputDir;

        @Option(names = "--input", paramLabel = "FILE", description = "A local eval_bundle.zip (or the unzipped folder).")
        Path input;

        @Option(names = "--url", defaultValue = URL, paramLabel = "URL", description = "Where to download from (default: ${DEFAULT-VALUE}).")
        URI url;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws IOException {
            long start = System.nanoTime();
            Path dir = outputDir != null ? outputDir : Path.of("data");
            Path target = dir.resolve("eval_bundle.zip");
            PrintWriter out = spec.commandLine().getOut();
            if (input != null) {
                if (!Files.exists(input)) throw new IllegalArgumentException("--input " + input + ": no such file or folder");
                List<gpt2.eval.Core.Task> tasks = gpt2.eval.CoreBundle.load(input); // checked before anything is written
                summary(out, tasks, start);
                if (Files.isDirectory(input)) {
                    out.println("an unzipped bundle: use it as it is with gpt2 eval --bundle " + input);
                } else if (!Files.exists(target) || !Files.isSameFile(input, target)) {
                    Files.createDirectories(dir);
                    Path tmp = dir.resolve("eval_bundle.zip.part");
                    Files.copy(input, tmp, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    Files.move(tmp, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                    out.println("wrote " + target);
                }
                out.flush();
                return 0;
            }
            Path part = Download.fetchResumable(url, target);
            List<gpt2.eval.Core.Task> tasks;
            try {
                tasks = gpt2.eval.CoreBundle.load(part);
            } catch (IllegalArgumentException e) {
                Files.deleteIfExists(part); // a bad archive is not kept to resume from
                throw new IllegalArgumentException("the downloaded bundle from " + url + " is not usable: "
                        + e.getMessage().lines().findFirst().orElse(""));
            }
            Files.move(part, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            summary(out, tasks, start);
            out.println("wrote " + target);
            out.flush();
            return 0;
        }

        private static void summary(PrintWriter out, List<gpt2.eval.Core.Task> tasks, long start) {
            long examples = tasks.stream().mapToLong(t -> t.data().size()).sum();
            out.printf("core: %d tasks, %,d examples checked in %.1f s%n", tasks.size(), examples, (System.nanoTime() - start) / 1e9);
        }
    }

    static String read(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read as UTF-8 text (" + e.getMessage() + ")");
        }
    }

    static void report(CommandSpec spec, PrepareSummary s, Path dir) {
        PrintWriter out = spec.commandLine().getOut();
        out.println(s.line());
        out.println("wrote " + dir.resolve(s.files().getFirst()) + (s.files().size() > 1 ? " ... " + s.files().getLast() : ""));
        if (s.note() != null) out.println("note: " + s.note());
        out.flush();
    }
}
