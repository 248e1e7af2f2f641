package gpt2.io;

import gpt2.backend.BFloat16;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Bulk copies between files' little-endian tensors (float32, bfloat16, float16) and float32
 * segments in native order. None of them touches a segment one element at a time: float32 moves
 * with {@link MemorySegment#copy} (byte-swapped where the machine is big-endian), 16-bit values
 * through heap arrays a chunk at a time, converted in plain array loops.
 * <p>
 * Why it matters beyond the load time: a loop of 124M segment reads and writes that runs before
 * the first training step leaves the JIT compiling the CPU backend's kernels 2-3x slower for the
 * rest of the process (a fresh model in the same JVM included); {@code gpt2 bench --compare_fresh 1}
 * measures it.
 */
final class FloatCopy {
    private FloatCopy() {
    }

    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Elements per heap chunk of a 16-bit conversion (256 KiB of floats). */
    static final int CHUNK = 1 << 16;
    /** Floats per band of a transpose (16 MiB of heap, twice): a whole d12-d36 weight at once. */
    static final int BAND_FLOATS = 1 << 22;

    enum Half { BF16, F16 }

    /** {@code count} little-endian float32 at byte {@code srcByte} into float32 {@code dst} from element {@code dstIndex}. */
    static void fromLittleEndian(MemorySegment src, long srcByte, MemorySegment dst, long dstIndex, long count) {
        MemorySegment.copy(src, F32_LE, srcByte, dst, F32, 4 * dstIndex, count);
    }

    /** {@code count} float32 of {@code src} from element {@code srcIndex} as little-endian at byte {@code dstByte}. */
    static void toLittleEndian(MemorySegment src, long srcIndex, MemorySegment dst, long dstByte, long count) {
        MemorySegment.copy(src, F32, 4 * srcIndex, dst, F32_LE, dstByte, count);
    }

    /** {@code count} little-endian 16-bit floats at byte {@code srcByte}, widened exactly into float32 {@code dst}. */
    static void fromHalf(Half kind, MemorySegment src, long srcByte, MemorySegment dst, long dstIndex, long count) {
        fromHalf(kind, src, srcByte, dst, dstIndex, count, CHUNK);
    }

    static void fromHalf(Half kind, MemorySegment src, long srcByte, MemorySegment dst, long dstIndex, long count, int chunk) {
        short[] h = new short[(int) Math.min(chunk, count)];
        float[] f = new float[h.length];
        for (long done = 0; done < count; ) {
            int n = (int) Math.min(h.length, count - done);
            MemorySegment.copy(src, U16_LE, srcByte + 2 * done, h, 0, n);
            if (kind == Half.BF16) {
                for (int i = 0; i < n; i++) f[i] = BFloat16.toFloat(h[i]);
            } else {
                for (int i = 0; i < n; i++) f[i] = Float.float16ToFloat(h[i]);
            }
            MemorySegment.copy(f, 0, dst, F32, 4 * (dstIndex + done), n);
            done += n;
        }
    }

    /** {@code count} float32 of {@code src} from element {@code srcIndex}, rounded to little-endian bfloat16 at byte {@code dstByte}. */
    static void toBf16(MemorySegment src, long srcIndex, MemorySegment dst, long dstByte, long count) {
        toBf16(src, srcIndex, dst, dstByte, count, CHUNK);
    }

    static void toBf16(MemorySegment src, long srcIndex, MemorySegment dst, long dstByte, long count, int chunk) {
        float[] f = new float[(int) Math.min(chunk, count)];
        short[] h = new short[f.length];
        for (long done = 0; done < count; ) {
            int n = (int) Math.min(f.length, count - done);
            MemorySegment.copy(src, F32, 4 * (srcIndex + done), f, 0, n);
            for (int i = 0; i < n; i++) h[i] = BFloat16.fromFloat(f[i]);
            MemorySegment.copy(h, 0, dst, U16_LE, dstByte + 2 * done, n);
            done += n;
        }
    }

    /**
     * A (rows, cols) float32 matrix of {@code src} transposed into {@code dst}'s (cols, rows), from
     * elements {@code srcIndex} and {@code dstIndex} (Hugging Face's Conv1D [in, out] and ours):
     * through heap arrays, a band of destination rows at a time, so that up to 4M floats a tensor
     * is one read and one write.
     */
    static void transpose(MemorySegment src, long srcIndex, MemorySegment dst, long dstIndex, int rows, int cols) {
        transpose(src, srcIndex, dst, dstIndex, rows, cols, BAND_FLOATS);
    }

    static void transpose(MemorySegment src, long srcIndex, MemorySegment dst, long dstIndex, int rows, int cols, int bandFloats) {
        int band = Math.max(1, Math.min(cols, bandFloats / Math.max(1, rows))); // destination rows = source columns
        float[] a = new float[band * rows], t = new float[band * rows];
        for (int c0 = 0; c0 < cols; c0 += band) {
            int n = Math.min(band, cols - c0);
            if (n == cols) {
                MemorySegment.copy(src, F32, 4 * srcIndex, a, 0, rows * cols);
            } else {
                for (int r = 0; r < rows; r++) MemorySegment.copy(src, F32, 4 * (srcIndex + (long) r * cols + c0), a, r * n, n);
            }
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < n; c++) t[c * rows + r] = a[r * n + c];
            }
            MemorySegment.copy(t, 0, dst, F32, 4 * (dstIndex + (long) c0 * rows), n * rows);
        }
    }
}
