package gpt2.data;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * FineWeb-Edu (or any corpus of documents) into token shards, as the original prepared it:
 * an end-of-text token before every document, shards of a fixed token count filled in document
 * order with documents split across shard boundaries, shard 0 the validation split.
 *
 * <pre>
 * documents --(batches of 256, tokenized on a pool, consumed in order)--> token stream
 *   --> edu_fineweb_val_000000.bin, edu_fineweb_train_000001.bin, ... (last one partial)
 *   --> prepare.json: settings, inputs, and per shard the stream position where it ends
 * </pre>
 * Because batches are consumed in order, the output does not depend on the thread count.
 * A rerun with the same inputs and settings keeps every shard the manifest lists whose file is
 * intact, and resumes the stream where the last of them ended.
 */
public final class FineWebEdu {
    private FineWebEdu() {
    }

    public static final long DEFAULT_SHARD_SIZE = 100_000_000L;
    public static final String MANIFEST = "prepare.json";
    private static final int BATCH = 256;

    /** {@code name}: the set's name, the shards' prefix (edu_fineweb for FineWeb-Edu, as the original). */
    public record Options(long shardSize, int threads, int magic, String column, String separator, String name) {
        public Options {
            if (shardSize < 1) throw new IllegalArgumentException("--shard_size must be positive, got " + shardSize);
            if (shardSize > 0xFFFFFFFFL) throw new IllegalArgumentException("--shard_size must fit a uint32 header");
            if (threads < 1) throw new IllegalArgumentException("--threads must be positive, got " + threads);
            if (!name.matches("[A-Za-z0-9][A-Za-z0-9_.-]*")) {
                throw new IllegalArgumentException("--name " + name + ": letters, digits, '_', '-' and '.' only");
            }
        }

        /** The set as messages and prepare.json name it: fineweb-edu, or the name. */
        public String dataset() {
            return name.equals(FINEWEB) ? "fineweb-edu" : name;
        }

        /** FineWeb-Edu's shards, named as the original. */
        public Options(long shardSize, int threads, int magic, String column, String separator) {
            this(shardSize, threads, magic, column, separator, FINEWEB);
        }
    }

    public static final String FINEWEB = "edu_fineweb";

    /** Manifest entries (public for Jackson). */
    public record InputFile(String path, long bytes, long modified) {
    }

    /** A finished shard and the stream position (document, tokens of it already written) after it. */
    public record ShardEntry(String file, long tokens, long endDoc, long endOffset) {
    }

    public record Manifest(String dataset, long shardSize, int magic, String column, String separator,
                           List<InputFile> inputs, List<ShardEntry> shards, long documents, boolean complete) {
    }

    public static String shardName(int index) {
        return shardName(FINEWEB, index);
    }

    /** NAME_val_000000.bin, then NAME_train_NNNNNN.bin. */
    public static String shardName(String name, int index) {
        return String.format("%s_%s_%06d.bin", name, index == 0 ? "val" : "train", index);
    }

    /**
     * Inputs still arriving (downloads): their fingerprint from the listing (path, size), a wait
     * called with a file's index before it is opened, and a status for the progress line. The
     * tokenizer starts on the first file as soon as it is complete.
     */
    public record Incoming(List<InputFile> fingerprint, java.util.function.IntConsumer awaitFile,
                           java.util.function.Supplier<String> status) {
    }

    public static PrepareSummary prepare(List<Path> inputs, Path outDir, Options o) {
        return prepare(inputs, outDir, o, null);
    }

    public static PrepareSummary prepare(List<Path> inputs, Path outDir, Options o, Incoming incoming) {
        long start = System.nanoTime();
        if (inputs.isEmpty()) throw new IllegalArgumentException("--input: no input files given");
        List<InputFile> fingerprint = incoming != null ? incoming.fingerprint() : fingerprint(inputs);
        Manifest old = readManifest(outDir);
        if (old != null && !old.dataset().equals(o.dataset())) {
            throw new IllegalArgumentException("--output_dir " + outDir + " holds the " + old.dataset() + " set (" + MANIFEST
                    + "); prepare " + o.dataset() + " into another folder");
        }
        refuseStrangers(outDir, old, o.name());
        List<ShardEntry> kept = new ArrayList<>();
        if (old != null && old.shardSize() == o.shardSize() && old.magic() == o.magic()
                && Objects.equals(old.column(), o.column()) && Objects.equals(old.separator(), o.separator())
                && old.inputs().equals(fingerprint)) {
            for (ShardEntry e : old.shards()) {
                if (!intact(outDir.resolve(e.file()), e.tokens(), o.magic())) break;
                kept.add(e);
            }
            if (old.complete() && kept.size() == old.shards().size()) {
                long tokens = kept.stream().mapToLong(ShardEntry::tokens).sum();
                return new PrepareSummary(o.dataset(), old.documents(), tokens,
                        kept.stream().map(ShardEntry::file).toList(), kept.size(), seconds(start));
            }
        }
        // this run owns the folder's set: shards of the earlier set it will not keep go now, so no glob
        // ever finds them beside the new set (a smaller --shard_size leaves fewer, differently cut files)
        if (old != null) {
            for (ShardEntry e : old.shards()) if (!kept.contains(e)) delete(outDir.resolve(e.file()));
        }
        State st = new State(outDir, o, fingerprint, kept, incoming == null ? null : incoming.status());
        ExecutorService pool = Executors.newFixedThreadPool(o.threads(), r -> {
            Thread t = new Thread(r, "tokenizer");
            t.setDaemon(true);
            return t;
        });
        long total = incoming != null ? -1 : Documents.countParquetRows(inputs);
        try (Documents docs = new Documents(inputs, o.column(), o.separator(), incoming == null ? null : incoming.awaitFile());
             Progress bar = new Progress(o.dataset(), total, "docs")) {
            long skip = st.resumeDoc;
            for (long i = 0; i < skip; i++) {
                if (!docs.hasNext()) throw new IllegalStateException("inputs end before the manifest's position");
                docs.next();
            }
            bar.step(skip);
            ArrayDeque<Future<int[][]>> inflight = new ArrayDeque<>();
            List<String> batch = new ArrayList<>(BATCH);
            while (docs.hasNext()) {
                batch.add(docs.next());
                if (batch.size() == BATCH) {
                    inflight.add(submit(pool, batch));
                    batch = new ArrayList<>(BATCH);
                    if (inflight.size() >= 2 * o.threads()) st.consume(take(inflight), bar);
                }
            }
            if (!batch.isEmpty()) inflight.add(submit(pool, batch));
            while (!inflight.isEmpty()) st.consume(take(inflight), bar);
            st.finish();
        } finally {
            pool.shutdownNow();
        }
        return new PrepareSummary(o.dataset(), st.docIndex, st.totalTokens,
                st.shards.stream().map(ShardEntry::file).toList(), kept.size(), seconds(start), st.note);
    }

    /** The streaming state: the open shard and the position in the document stream. */
    private static final class State {
        final Path outDir;
        final Options o;
        final List<InputFile> inputs;
        final List<ShardEntry> shards;
        final long resumeDoc;
        long resumeOffset;
        long docIndex;
        long totalTokens;
        ShardWriter writer;

        final java.util.function.Supplier<String> status;

        State(Path outDir, Options o, List<InputFile> inputs, List<ShardEntry> kept, java.util.function.Supplier<String> status) {
            this.status = status;
            this.outDir = outDir;
            this.o = o;
            this.inputs = inputs;
            this.shards = new ArrayList<>(kept);
            ShardEntry last = kept.isEmpty() ? null : kept.getLast();
            this.resumeDoc = last == null ? 0 : last.endDoc();
            this.resumeOffset = last == null ? 0 : last.endOffset();
            this.docIndex = resumeDoc;
            this.totalTokens = kept.stream().mapToLong(ShardEntry::tokens).sum();
        }

        void consume(int[][] docs, Progress bar) {
            for (int[] doc : docs) {
                int from = (int) resumeOffset; // only the first document after a resume is partly written
                resumeOffset = 0;
                while (from < doc.length) {
                    if (writer == null) writer = new ShardWriter(outDir.resolve(shardName(o.name(), shards.size())), o.magic());
                    int take = (int) Math.min(doc.length - from, o.shardSize() - writer.count());
                    writer.append(doc, from, take);
                    from += take;
                    if (writer.count() == o.shardSize()) {
                        boolean docDone = from == doc.length;
                        commit(docDone ? docIndex + 1 : docIndex, docDone ? 0 : from);
                    }
                }
                docIndex++;
                bar.step(1);
            }
            bar.extra("shard " + shards.size() + (status == null ? "" : " | " + status.get()));
        }

        void commit(long endDoc, long endOffset) {
            writer.commit();
            String name = shardName(o.name(), shards.size());
            shards.add(new ShardEntry(name, writer.count(), endDoc, endOffset));
            totalTokens += writer.count();
            writer = null;
            writeManifest(outDir, new Manifest(o.dataset(), o.shardSize(), o.magic(), o.column(), o.separator(),
                    inputs, shards, docIndex, false));
        }

        /** Set when a corpus smaller than one shard was split into a validation and a training shard. */
        String note;

        void finish() {
            if (writer != null && writer.count() > 0) {
                boolean whole = shards.isEmpty(); // the corpus ended inside its first (validation) shard
                commit(docIndex, 0);
                if (whole) splitSmallCorpus();
            }
            if (writer != null) writer.close();
            writeManifest(outDir, new Manifest(o.dataset(), o.shardSize(), o.magic(), o.column(), o.separator(),
                    inputs, shards, docIndex, true));
        }

        /**
         * A corpus smaller than one shard would be a validation shard only, leaving nothing to train on:
         * the validation shard keeps its first tenth (at least one token) and the rest becomes
         * NAME_train_000001.bin. Documents start with an end-of-text token (and hold no other), so the
         * cut's place in the document stream (the manifest's resume position) is counted from them.
         */
        private void splitSmallCorpus() {
            ShardEntry only = shards.getFirst();
            if (only.tokens() < 2) return;
            Path valFile = outDir.resolve(only.file());
            int[] tokens;
            try (TokenShard t = TokenShard.open(valFile)) {
                tokens = t.readAll();
            }
            int cut = Math.max(1, tokens.length / 10);
            long doc = -1, docStart = 0;
            for (int i = 0; i <= cut && i < tokens.length; i++) {
                if (tokens[i] == Tokenizer.EOT) {
                    doc++;
                    docStart = i;
                }
            }
            ShardWriter.write(valFile, o.magic(), tokens, 0, cut);
            String trainName = shardName(o.name(), 1);
            ShardWriter.write(outDir.resolve(trainName), o.magic(), tokens, cut, tokens.length);
            shards.set(0, new ShardEntry(only.file(), cut, Math.max(0, doc), cut - docStart));
            shards.add(new ShardEntry(trainName, tokens.length - cut, only.endDoc(), only.endOffset()));
            note = String.format("the corpus (%,d tokens) is smaller than one --shard_size (%,d): %s holds its first tenth "
                    + "(%,d tokens) for validation and %s the other %,d for training", tokens.length, o.shardSize(),
                    only.file(), cut, trainName, tokens.length - cut);
        }
    }

    private static Future<int[][]> submit(ExecutorService pool, List<String> batch) {
        return pool.submit(() -> {
            Tokenizer tok = Tokenizer.gpt2();
            int[][] out = new int[batch.size()][];
            for (int i = 0; i < out.length; i++) out[i] = tok.encodeDocument(batch.get(i));
            return out;
        });
    }

    private static int[][] take(ArrayDeque<Future<int[][]>> q) {
        try {
            return q.poll().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) throw re;
            throw new IllegalStateException(e.getCause());
        }
    }

    /**
     * Refuses a folder holding shard-named files that no manifest of ours lists (another tool's, or
     * a set whose prepare.json is gone): a prepare removes only what a prepare made.
     */
    private static void refuseStrangers(Path outDir, Manifest old, String name) {
        if (!Files.isDirectory(outDir)) return;
        java.util.regex.Pattern shard = java.util.regex.Pattern.compile(java.util.regex.Pattern.quote(name) + "_(val|train)_\\d{6}\\.bin");
        java.util.Set<String> ours = new java.util.HashSet<>();
        if (old != null) {
            for (ShardEntry e : old.shards()) ours.add(e.file());
            ours.add(shardName(name, old.shards().size())); // renamed into place just before a crash could record it
        }
        List<String> strangers;
        try (var files = Files.list(outDir)) {
            strangers = files.map(f -> f.getFileName().toString()).filter(n -> shard.matcher(n).matches() && !ours.contains(n))
                    .sorted().toList();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(outDir + ": " + e.getMessage(), e);
        }
        if (!strangers.isEmpty()) {
            throw new IllegalArgumentException("--output_dir " + outDir + " holds " + strangers.size() + " shard file(s) that no "
                    + MANIFEST + " lists (" + String.join(", ", strangers.subList(0, Math.min(3, strangers.size())))
                    + (strangers.size() > 3 ? ", ..." : "") + "); move them away or choose another --output_dir");
        }
    }

    private static void delete(Path f) {
        try {
            Files.deleteIfExists(f);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot remove the earlier set's " + f + ": " + e.getMessage(), e);
        }
    }

    private static boolean intact(Path file, long tokens, int magic) {
        if (!Files.isRegularFile(file)) return false;
        try (TokenShard s = TokenShard.open(file)) {
            return s.size() == tokens && s.magic() == magic;
        } catch (RuntimeException e) {
            return false;
        }
    }

    private static List<InputFile> fingerprint(List<Path> inputs) {
        List<InputFile> out = new ArrayList<>();
        for (Path p : inputs) {
            try {
                out.add(new InputFile(p.toAbsolutePath().normalize().toString(), Files.size(p),
                        Files.getLastModifiedTime(p).toMillis()));
            } catch (IOException e) {
                throw new IllegalArgumentException(p + ": cannot read input (" + e.getMessage() + ")");
            }
        }
        return out;
    }

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    static Manifest readManifest(Path outDir) {
        Path f = outDir.resolve(MANIFEST);
        if (!Files.isRegularFile(f)) return null;
        try {
            return JSON.readValue(f.toFile(), Manifest.class);
        } catch (IOException e) {
            return null; // an unreadable manifest means starting over, never trusting it
        }
    }

    private static void writeManifest(Path outDir, Manifest m) {
        Path f = outDir.resolve(MANIFEST), tmp = outDir.resolve(MANIFEST + ".tmp");
        try {
            JSON.writeValue(tmp.toFile(), m);
            Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": cannot write manifest: " + e.getMessage(), e);
        }
    }

    private static double seconds(long start) {
        return (System.nanoTime() - start) / 1e9;
    }
}
