package gpt2.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then
 * the raw little-endian tensor bytes. F32 and BF16 are written; F32, BF16 and F16 are read
 * (converted to float32).
 */
public final class Safetensors {
    private Safetensors() {
    }

    /**
     * A tensor to write: its data is {@code source} (float32, row-major), stored as {@code dtype}
     * ("F32", or "BF16" rounded to nearest even).
     */
    public record Entry(String name, long[] shape, MemorySegment source, String dtype) {
        public Entry(String name, long[] shape, MemorySegment source) {
            this(name, shape, source, "F32");
        }

        long elements() {
            long n = 1;
            for (long d : shape) n *= d;
            return n;
        }

        long storedBytes() {
            return elements() * (dtype.equals("BF16") ? 2 : 4);
        }
    }

    /** A tensor of a file being read. */
    public record Info(String name, String dtype, long[] shape, long begin, long end) {
        public long elements() {
            long n = 1;
            for (long d : shape) n *= d;
            return n;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    public static void write(Path file, List<Entry> entries, Map<String, String> metadata) {
        ObjectNode header = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Entry e : entries) {
            if (e.elements() * 4 != e.source().byteSize()) {
                throw new IllegalArgumentException(e.name() + ": shape does not match its " + e.source().byteSize() + " bytes");
            }
            if (!e.dtype().equals("F32") && !e.dtype().equals("BF16")) {
                throw new IllegalArgumentException(e.name() + ": cannot write dtype " + e.dtype());
            }
            long bytes = e.storedBytes();
            ObjectNode t = header.putObject(e.name());
            t.put("dtype", e.dtype());
            var shape = t.putArray("shape");
            for (long d : e.shape()) shape.add(d);
            var offs = t.putArray("data_offsets");
            offs.add(offset);
            offs.add(offset + bytes);
            offset += bytes;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int pad = (8 - json.length % 8) % 8; // spaces keep the data 8-byte aligned, as the reference writer does
        byte[] head = new byte[json.length + pad];
        System.arraycopy(json, 0, head, 0, json.length);
        for (int i = json.length; i < head.length; i++) head[i] = ' ';
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(head.length).flip();
            writeFully(ch, len);
            writeFully(ch, ByteBuffer.wrap(head));
            for (Entry e : entries) {
                MemorySegment src = e.source();
                if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
                    throw new UnsupportedOperationException("big-endian hosts are not supported");
                }
                if (e.dtype().equals("BF16")) {
                    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 21);
                    MemorySegment bufSeg = MemorySegment.ofBuffer(buf);
                    for (long done = 0; done < e.elements(); done += 1 << 20) {
                        int n = (int) Math.min(1 << 20, e.elements() - done);
                        FloatCopy.toBf16(src, done, bufSeg, 0, n);
                        writeFully(ch, buf.clear().limit(2 * n));
                    }
                    continue;
                }
                for (long at = 0; at < src.byteSize(); at += 1 << 24) {
                    long n = Math.min(1 << 24, src.byteSize() - at);
                    writeFully(ch, src.asSlice(at, n).asByteBuffer());
                }
            }
            ch.force(true);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write safetensors: " + e.getMessage(), e);
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    /** An open safetensors file, memory-mapped. */
    public static final class Reader implements AutoCloseable {
        private final Path file;
        private final Arena arena = Arena.ofShared();
        private final MemorySegment map;
        private final long dataStart;
        private final Map<String, Info> tensors = new LinkedHashMap<>();
        private final Map<String, String> metadata = new LinkedHashMap<>();

        public Reader(Path file) {
            this.file = file;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size < 8) throw new IllegalArgumentException(file + ": not a safetensors file (too short)");
                map = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
                long n = map.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
                if (n <= 0 || 8 + n > size || n > 100_000_000) {
                    throw new IllegalArgumentException(file + ": not a safetensors file (header length " + n + ")");
                }
                dataStart = 8 + n;
                byte[] head = map.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
                JsonNode root = JSON.readTree(new String(head, StandardCharsets.UTF_8));
                for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
                    var f = it.next();
                    if (f.getKey().equals("__metadata__")) {
                        f.getValue().fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                        continue;
                    }
                    JsonNode t = f.getValue();
                    if (!t.path("dtype").isTextual() || !t.path("shape").isArray() || !t.path("data_offsets").isArray()
                            || t.get("data_offsets").size() != 2) {
                        throw new IllegalArgumentException(file + ": tensor " + f.getKey()
                                + " lacks dtype, shape or data_offsets in the header");
                    }
                    List<Long> shape = new ArrayList<>();
                    t.get("shape").forEach(d -> shape.add(d.asLong()));
                    long begin = t.get("data_offsets").get(0).asLong(), end = t.get("data_offsets").get(1).asLong();
                    if (begin < 0 || end < begin || dataStart + end > size) {
                        throw new IllegalArgumentException(file + ": tensor " + f.getKey() + " lies outside the file (truncated?)");
                    }
                    tensors.put(f.getKey(), new Info(f.getKey(), t.get("dtype").asText(),
                            shape.stream().mapToLong(Long::longValue).toArray(), begin, end));
                }
            } catch (IOException e) {
                arena.close();
                throw new IllegalArgumentException(file + ": cannot read safetensors (" + e.getMessage() + ")");
            } catch (RuntimeException e) {
                arena.close();
                throw e;
            }
        }

        public Map<String, Info> tensors() {
            return tensors;
        }

        public Map<String, String> metadata() {
            return metadata;
        }

        /**
         * A tensor of dtype F32, BF16 or F16, checked against the expected shape, converted into
         * {@code dst} (float32, {@code elements} x 4 bytes).
         */
        public void readFloats(String name, long[] expectedShape, MemorySegment dst) {
            Info t = tensors.get(name);
            if (t == null) throw new IllegalArgumentException(file + ": no tensor '" + name + "'");
            if (!java.util.Arrays.equals(t.shape(), expectedShape)) {
                throw new IllegalArgumentException(file + ": tensor " + name + " has shape " + java.util.Arrays.toString(t.shape())
                        + ", expected " + java.util.Arrays.toString(expectedShape));
            }
            long n = t.elements();
            MemorySegment src = map.asSlice(dataStart + t.begin(), t.end() - t.begin());
            switch (t.dtype()) {
                case "F32" -> {
                    if (src.byteSize() != 4 * n) throw new IllegalArgumentException(file + ": tensor " + name + " has the wrong byte count");
                    dst.copyFrom(src);
                }
                case "BF16", "F16" -> {
                    if (src.byteSize() != 2 * n) throw new IllegalArgumentException(file + ": tensor " + name + " has the wrong byte count");
                    FloatCopy.fromHalf(t.dtype().equals("BF16") ? FloatCopy.Half.BF16 : FloatCopy.Half.F16, src, 0, dst, 0, n);
                }
                default -> throw new IllegalArgumentException(file + ": tensor " + name + " is " + t.dtype()
                        + " (F32, BF16 or F16 are read)");
            }
        }

        /** The bytes of an F32 tensor, checked against the expected shape. */
        public MemorySegment f32(String name, long[] expectedShape) {
            Info t = tensors.get(name);
            if (t == null) throw new IllegalArgumentException(file + ": no tensor '" + name + "'");
            if (!t.dtype().equals("F32")) throw new IllegalArgumentException(file + ": tensor " + name + " is " + t.dtype() + ", expected F32");
            if (!java.util.Arrays.equals(t.shape(), expectedShape)) {
                throw new IllegalArgumentException(file + ": tensor " + name + " has shape " + java.util.Arrays.toString(t.shape())
                        + ", expected " + java.util.Arrays.toString(expectedShape));
            }
            if (t.end() - t.begin() != 4 * t.elements()) throw new IllegalArgumentException(file + ": tensor " + name + " has the wrong byte count");
            return map.asSlice(dataStart + t.begin(), t.end() - t.begin());
        }

        @Override
        public void close() {
            arena.close();
        }
    }
}
