package gpt2.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The writer is checked against an independent parse of the bytes (java.nio + Jackson, following
 * the format's specification), the reader against the writer, and every error names the file.
 */
class SafetensorsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Three tensors of different ranks; values are distinct and not representable in fewer bits. */
    private static final Map<String, long[]> SHAPES = new LinkedHashMap<>();
    static {
        SHAPES.put("wte", new long[]{3, 5});
        SHAPES.put("h.0.ln_1.bias", new long[]{7});
        SHAPES.put("cube", new long[]{2, 3, 2});
    }

    private static float[] values(int tensor, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (Math.sin(1.7 * i + tensor) * Math.pow(10, tensor - 1)) + 1e-3f * tensor;
        return v;
    }

    private static long elements(long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** Writes the three tensors with two metadata fields; returns the expected values by name. */
    private static Map<String, float[]> writeSample(Path file) {
        Map<String, float[]> expected = new LinkedHashMap<>();
        try (Arena arena = Arena.ofConfined()) {
            List<Safetensors.Entry> entries = new ArrayList<>();
            int i = 0;
            for (var e : SHAPES.entrySet()) {
                float[] v = values(i++, (int) elements(e.getValue()));
                expected.put(e.getKey(), v);
                MemorySegment seg = arena.allocate(4L * v.length, 8);
                MemorySegment.copy(v, 0, seg, ValueLayout.JAVA_FLOAT, 0, v.length);
                entries.add(new Safetensors.Entry(e.getKey(), e.getValue(), seg));
            }
            Safetensors.write(file, entries, Map.of("format", "test v1", "step", "42"));
        }
        return expected;
    }

    @Test
    void writtenBytesFollowTheFormatWhenParsedIndependently(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("sample.safetensors");
        Map<String, float[]> expected = writeSample(file);
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = buf.getLong(0);
        assertTrue(n > 0 && 8 + n <= bytes.length, "header length " + n + " fits in " + bytes.length + " bytes");
        assertEquals(0, (8 + n) % 8, "data starts 8-byte aligned");
        JsonNode header = JSON.readTree(new String(bytes, 8, (int) n, StandardCharsets.UTF_8));

        JsonNode meta = header.get("__metadata__");
        assertEquals("test v1", meta.get("format").asText());
        assertEquals("42", meta.get("step").asText());
        assertEquals(2, meta.size());

        long dataStart = 8 + n, totalData = 0;
        int tensors = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
            var f = it.next();
            if (f.getKey().equals("__metadata__")) continue;
            tensors++;
            String name = f.getKey();
            JsonNode t = f.getValue();
            assertEquals("F32", t.get("dtype").asText(), name);
            long[] shape = new long[t.get("shape").size()];
            for (int d = 0; d < shape.length; d++) shape[d] = t.get("shape").get(d).asLong();
            assertArrayEquals(SHAPES.get(name), shape, name + " shape");
            long begin = t.get("data_offsets").get(0).asLong(), end = t.get("data_offsets").get(1).asLong();
            float[] want = expected.get(name);
            assertEquals(4L * want.length, end - begin, name + " byte count");
            for (int i = 0; i < want.length; i++) {
                float got = buf.getFloat((int) (dataStart + begin + 4L * i));
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got), name + "[" + i + "]");
            }
            totalData += end - begin;
        }
        assertEquals(SHAPES.size(), tensors, "tensor count");
        assertEquals(bytes.length, dataStart + totalData, "no bytes beyond the last tensor");
    }

    @Test
    void readerReadsBackTensorsMetadataAndValues(@TempDir Path dir) {
        Path file = dir.resolve("sample.safetensors");
        Map<String, float[]> expected = writeSample(file);
        try (Safetensors.Reader r = new Safetensors.Reader(file)) {
            assertEquals(SHAPES.keySet(), r.tensors().keySet());
            assertEquals(Map.of("format", "test v1", "step", "42"), r.metadata());
            for (var e : SHAPES.entrySet()) {
                Safetensors.Info info = r.tensors().get(e.getKey());
                assertEquals("F32", info.dtype());
                assertArrayEquals(e.getValue(), info.shape());
                assertEquals(elements(e.getValue()), info.elements());
                MemorySegment seg = r.f32(e.getKey(), e.getValue());
                float[] got = seg.toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
                assertArrayEquals(expected.get(e.getKey()), got, e.getKey());
            }
        }
    }

    @Test
    void writeWithoutMetadataOmitsTheMetadataObject(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("plain.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(4, 8);
            seg.set(ValueLayout.JAVA_FLOAT, 0, 2.5f);
            Safetensors.write(file, List.of(new Safetensors.Entry("x", new long[]{1}, seg)), Map.of());
        }
        byte[] bytes = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        JsonNode header = JSON.readTree(new String(bytes, 8, (int) n, StandardCharsets.UTF_8));
        assertTrue(!header.has("__metadata__"), "no metadata object: " + header);
        assertEquals(2.5f, ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getFloat((int) (8 + n)));
        try (Safetensors.Reader r = new Safetensors.Reader(file)) {
            assertTrue(r.metadata().isEmpty());
        }
    }

    @Test
    void writeRefusesAShapeThatDoesNotMatchTheData(@TempDir Path dir) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(4 * 6, 8);
            var e = assertThrows(IllegalArgumentException.class, () -> Safetensors.write(dir.resolve("bad.safetensors"),
                    List.of(new Safetensors.Entry("w", new long[]{2, 2}, seg)), null));
            assertTrue(e.getMessage().contains("w"), e.getMessage());
        }
    }

    @Test
    void wrongShapeAndMissingTensorNameTheFile(@TempDir Path dir) {
        Path file = dir.resolve("sample.safetensors");
        writeSample(file);
        try (Safetensors.Reader r = new Safetensors.Reader(file)) {
            var shape = assertThrows(IllegalArgumentException.class, () -> r.f32("wte", new long[]{5, 3}));
            assertMessage(shape, file, "shape");
            var missing = assertThrows(IllegalArgumentException.class, () -> r.f32("lm_head.weight", new long[]{3, 5}));
            assertMessage(missing, file, "lm_head.weight");
        }
    }

    @Test
    void anotherDtypeIsRefused(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("half.safetensors");
        writeByHand(file, "{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
        try (Safetensors.Reader r = new Safetensors.Reader(file)) {
            assertEquals("F16", r.tensors().get("x").dtype());
            var e = assertThrows(IllegalArgumentException.class, () -> r.f32("x", new long[]{2}));
            assertMessage(e, file, "F16");
        }
    }

    @Test
    void truncatedFileIsRefused(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("cut.safetensors");
        writeSample(file);
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length - 4));
        var e = assertThrows(IllegalArgumentException.class, () -> new Safetensors.Reader(file).close());
        assertMessage(e, file, "outside");

        Path byHand = dir.resolve("short.safetensors");
        writeByHand(byHand, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12);
        var e2 = assertThrows(IllegalArgumentException.class, () -> new Safetensors.Reader(byHand).close());
        assertMessage(e2, byHand, "outside");
    }

    @Test
    void fileShorterThanTheLengthFieldIsRefused(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("tiny.safetensors");
        Files.write(file, new byte[]{1, 0, 0, 0, 0});
        var e = assertThrows(IllegalArgumentException.class, () -> new Safetensors.Reader(file).close());
        assertMessage(e, file, "too short");

        Path empty = dir.resolve("empty.safetensors");
        Files.write(empty, new byte[0]);
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new Safetensors.Reader(empty).close()), empty, "");
    }

    @Test
    void headerLengthBeyondTheFileIsRefused(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("long-header.safetensors");
        byte[] bytes = new byte[16];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1000);
        Files.write(file, bytes);
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new Safetensors.Reader(file).close()),
                file, "header length");
    }

    /** An 8-byte length, the header padded with spaces to 8-byte alignment, then dataBytes of zeros. */
    private static void writeByHand(Path file, String header, int dataBytes) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer b = ByteBuffer.allocate(8 + padded + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded).put(json);
        for (int i = json.length; i < padded; i++) b.put((byte) ' ');
        Files.write(file, b.array());
    }

    private static void assertMessage(Exception e, Path file, String part) {
        String m = e.getMessage();
        assertTrue(m != null && m.contains(file.toString()), "message names the file: " + m);
        assertTrue(m.contains(part), "message mentions '" + part + "': " + m);
    }
}
