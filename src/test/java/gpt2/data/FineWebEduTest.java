package gpt2.data;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FineWebEduTest {

    private static final String SEP = "<|endoftext|>";

    /** Documents of varied length and content, some with unicode. */
    static List<String> documents(int n, long seed) {
        Random r = new Random(seed);
        String[] words = {"the", "river", "Ångström", "2024", "don't", "learning", "\u751f\u6d3b", "cell", "  ", "\n", "energy"};
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            StringBuilder sb = new StringBuilder("Doc " + i + ":");
            int len = 5 + r.nextInt(60);
            for (int k = 0; k < len; k++) sb.append(' ').append(words[r.nextInt(words.length)]);
            docs.add(sb.toString());
        }
        return docs;
    }

    /** The expected token stream, computed directly: EOT + ordinary tokens per document. */
    static int[] expectedStream(List<String> docs) {
        List<Integer> all = new ArrayList<>();
        for (String d : docs) {
            all.add(Tokenizer.EOT);
            for (int t : Tokenizer.gpt2().encode(d)) all.add(t);
        }
        return all.stream().mapToInt(Integer::intValue).toArray();
    }

    static Path writeText(Path dir, List<String> docs) throws Exception {
        return Files.writeString(dir.resolve("docs.txt"), String.join(SEP, docs) + SEP);
    }

    static FineWebEdu.Options options(long shardSize, int threads) {
        return new FineWebEdu.Options(shardSize, threads, TokenShard.MAGIC_LLMC, "text", SEP);
    }

    /** All shard tokens in order, checking names and that every shard but the last is full. */
    static int[] readShards(Path dir, List<String> files, long shardSize) {
        List<Integer> all = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) {
            assertEquals(FineWebEdu.shardName(i), files.get(i));
            try (TokenShard s = TokenShard.open(dir.resolve(files.get(i)))) {
                if (i < files.size() - 1) assertEquals(shardSize, s.size(), files.get(i) + " is not full");
                for (int t : s.readAll()) all.add(t);
            }
        }
        return all.stream().mapToInt(Integer::intValue).toArray();
    }

    @Test
    void textIntoShardsWithDocumentsSplitAcrossBoundaries(@TempDir Path dir) throws Exception {
        List<String> docs = documents(120, 1);
        Path out = dir.resolve("out");
        PrepareSummary s = FineWebEdu.prepare(List.of(writeText(dir, docs)), out, options(1000, 2));
        int[] expected = expectedStream(docs);
        assertEquals(120, s.documents());
        assertEquals(expected.length, s.tokens());
        assertEquals((expected.length + 999) / 1000, s.files().size(), "the last partial shard is written too");
        assertEquals("edu_fineweb_val_000000.bin", s.files().getFirst());
        assertEquals("edu_fineweb_train_000001.bin", s.files().get(1));
        assertArrayEquals(expected, readShards(out, s.files(), 1000));
    }

    @Test
    void jsonlAndParquetGiveTheSameShardsAsText(@TempDir Path dir) throws Exception {
        List<String> docs = documents(50, 2);
        PrepareSummary text = FineWebEdu.prepare(List.of(writeText(dir, docs)), dir.resolve("a"), options(700, 1));

        Path jsonl = dir.resolve("docs.jsonl");
        ObjectMapper json = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        for (String d : docs) lines.add(json.writeValueAsString(Map.of("text", d, "id", lines.size())));
        Files.write(jsonl, lines);
        FineWebEdu.prepare(List.of(jsonl), dir.resolve("b"), options(700, 1));

        Path parquet = dir.resolve("docs.parquet");
        try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id INTEGER, text VARCHAR, score DOUBLE)");
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO t VALUES (?, ?, ?)")) {
                for (int i = 0; i < docs.size(); i++) {
                    ps.setInt(1, i);
                    ps.setString(2, docs.get(i));
                    ps.setDouble(3, 3.5);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            st.execute("COPY (SELECT * FROM t ORDER BY id) TO '" + parquet.toString().replace("'", "''") + "' (FORMAT parquet)");
        }
        assertEquals(50, Documents.countParquetRows(List.of(parquet)));
        FineWebEdu.prepare(List.of(parquet), dir.resolve("c"), options(700, 1));

        for (String f : text.files()) {
            byte[] a = Files.readAllBytes(dir.resolve("a").resolve(f));
            assertArrayEquals(a, Files.readAllBytes(dir.resolve("b").resolve(f)), "jsonl " + f);
            assertArrayEquals(a, Files.readAllBytes(dir.resolve("c").resolve(f)), "parquet " + f);
        }
    }

    @Test
    void threadCountDoesNotChangeTheOutput(@TempDir Path dir) throws Exception {
        List<String> docs = documents(900, 3); // several batches of 256 in flight
        Path in = writeText(dir, docs);
        PrepareSummary one = FineWebEdu.prepare(List.of(in), dir.resolve("t1"), options(5000, 1));
        PrepareSummary three = FineWebEdu.prepare(List.of(in), dir.resolve("t3"), options(5000, 3));
        assertEquals(one.files(), three.files());
        for (String f : one.files()) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("t1").resolve(f)), Files.readAllBytes(dir.resolve("t3").resolve(f)), f);
        }
    }

    @Test
    void rerunSkipsCompleteShardsAndResumesExactly(@TempDir Path dir) throws Exception {
        List<String> docs = documents(300, 4);
        Path in = writeText(dir, docs);
        Path out = dir.resolve("out");
        PrepareSummary first = FineWebEdu.prepare(List.of(in), out, options(900, 2));
        assertTrue(first.files().size() >= 5, "want several shards, got " + first.files().size());
        List<byte[]> bytes = new ArrayList<>();
        for (String f : first.files()) bytes.add(Files.readAllBytes(out.resolve(f)));

        // a complete rerun touches nothing
        long mtime = Files.getLastModifiedTime(out.resolve(first.files().get(1))).toMillis();
        PrepareSummary again = FineWebEdu.prepare(List.of(in), out, options(900, 2));
        assertEquals(first.files().size(), again.skippedShards());
        assertEquals(mtime, Files.getLastModifiedTime(out.resolve(first.files().get(1))).toMillis());

        // an interrupted run: shard 2 lost, later ones stale; the rerun keeps 0 and 1 and resumes mid-document
        Files.delete(out.resolve(first.files().get(2)));
        Files.write(out.resolve(first.files().get(3)), new byte[10]);
        PrepareSummary resumed = FineWebEdu.prepare(List.of(in), out, options(900, 2));
        assertEquals(2, resumed.skippedShards());
        assertEquals(first.files(), resumed.files());
        assertEquals(first.tokens(), resumed.tokens());
        assertEquals(300, resumed.documents());
        for (int i = 0; i < bytes.size(); i++) {
            assertArrayEquals(bytes.get(i), Files.readAllBytes(out.resolve(first.files().get(i))), first.files().get(i));
        }
        // different settings mean starting over, not trusting the manifest
        PrepareSummary other = FineWebEdu.prepare(List.of(in), out, options(1000, 2));
        assertEquals(0, other.skippedShards());
    }

    /**
     * Issue 29: a corpus smaller than one shard became a validation shard only, and train had nothing
     * to train on. It is split: the validation shard holds its first tenth, the training shard the rest;
     * a rerun that lost the training shard writes it again from the manifest's position, the same bytes.
     */
    @Test
    void aCorpusSmallerThanOneShardIsSplitIntoValidationAndTraining(@TempDir Path dir) throws Exception {
        List<String> docs = documents(60, 7);
        Path in = writeText(dir, docs), out = dir.resolve("out");
        int[] expected = expectedStream(docs);
        PrepareSummary s = FineWebEdu.prepare(List.of(in), out, options(1_000_000, 2));
        assertEquals(List.of("edu_fineweb_val_000000.bin", "edu_fineweb_train_000001.bin"), s.files());
        assertEquals(expected.length, s.tokens());
        try (TokenShard val = TokenShard.open(out.resolve(s.files().get(0)));
             TokenShard train = TokenShard.open(out.resolve(s.files().get(1)))) {
            assertEquals(expected.length / 10, val.size(), "the validation shard takes a tenth");
            assertEquals(expected.length - expected.length / 10, train.size());
            int[] both = new int[expected.length];
            System.arraycopy(val.readAll(), 0, both, 0, (int) val.size());
            System.arraycopy(train.readAll(), 0, both, (int) val.size(), (int) train.size());
            assertArrayEquals(expected, both, "the two shards are the corpus, in order");
        }
        assertTrue(s.note() != null && s.note().contains("smaller than one --shard_size") && s.note().contains("first tenth"),
                "the split is said: " + s.note());

        byte[] trainBytes = Files.readAllBytes(out.resolve(s.files().get(1)));
        Files.delete(out.resolve(s.files().get(1)));
        PrepareSummary again = FineWebEdu.prepare(List.of(in), out, options(1_000_000, 2));
        assertEquals(1, again.skippedShards(), "the validation shard is kept");
        assertArrayEquals(trainBytes, Files.readAllBytes(out.resolve(s.files().get(1))), "resumed at the cut, mid-document");
    }

    /**
     * Issue 22.3: preparing again into the same folder with a smaller shard size left the earlier
     * set's extra shards behind, so a glob trained on duplicated data. A prepare owns its set: the
     * earlier set's files it does not keep are removed; shard files no manifest lists are refused.
     */
    @Test
    void aPrepareOwnsItsSetAndRemovesTheEarlierSetsExtraShards(@TempDir Path dir) throws Exception {
        List<String> docs = documents(120, 1);
        Path in = writeText(dir, docs), out = dir.resolve("out");
        PrepareSummary big = FineWebEdu.prepare(List.of(in), out, options(500, 2));
        PrepareSummary small = FineWebEdu.prepare(List.of(in), out, options(2000, 2));
        assertTrue(big.files().size() > small.files().size() + 1, big.files() + " vs " + small.files());
        try (var s = Files.list(out)) {
            List<String> shards = s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".bin")).sorted().toList();
            assertEquals(small.files().stream().sorted().toList(), shards, "only the new set's shards remain");
        }
        assertArrayEquals(expectedStream(docs), readShards(out, small.files(), 2000));
        String manifest = Files.readString(out.resolve(FineWebEdu.MANIFEST));
        for (String f : small.files()) assertTrue(manifest.contains(f), manifest);

        // a shard-named file nobody's manifest lists is not ours to remove: refused, and left alone
        Path stranger = Files.writeString(out.resolve("edu_fineweb_train_000042.bin"), "someone else's");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FineWebEdu.prepare(List.of(in), out, options(500, 2)));
        assertTrue(e.getMessage().contains("holds 1 shard file(s) that no prepare.json lists (edu_fineweb_train_000042.bin)"),
                e.getMessage());
        assertEquals("someone else's", Files.readString(stranger));
    }

    @Test
    void badJsonlLinesAreNamed(@TempDir Path dir) throws Exception {
        Path jsonl = Files.writeString(dir.resolve("bad.jsonl"), "{\"text\": \"fine\"}\n{\"body\": \"no text\"}\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FineWebEdu.prepare(List.of(jsonl), dir.resolve("out"), options(100, 1)));
        assertTrue(e.getMessage().contains("bad.jsonl: line 2 has no text field 'text'"), e.getMessage());
        Path broken = Files.writeString(dir.resolve("broken.parquet"), "not parquet");
        e = assertThrows(IllegalArgumentException.class,
                () -> FineWebEdu.prepare(List.of(broken), dir.resolve("out2"), options(100, 1)));
        assertTrue(e.getMessage().contains("broken.parquet"), e.getMessage());
    }

    /** The 100 real FineWeb-Edu documents beside the checkout (CI only). */
    @Test
    void realSamplePrepares(@TempDir Path dir) throws Exception {
        Path sample = SharedData.require("fineweb-edu/sample.txt");
        PrepareSummary s = FineWebEdu.prepare(List.of(sample), dir, options(50_000, 2));
        String text = Files.readString(sample);
        long docs = java.util.Arrays.stream(text.split(java.util.regex.Pattern.quote(SEP))).filter(d -> !d.isEmpty()).count();
        assertEquals(docs, s.documents());
        int[] all = readShards(dir, s.files(), 50_000);
        assertEquals(s.tokens(), all.length);
        assertEquals(docs, java.util.Arrays.stream(all).filter(t -> t == Tokenizer.EOT).count());
        assertTrue(s.tokens() > 50_000, "sample has " + s.tokens() + " tokens");
    }
}
