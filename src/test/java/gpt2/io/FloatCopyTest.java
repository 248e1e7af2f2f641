package gpt2.io;

import gpt2.backend.BFloat16;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The bulk copies give the values the element-by-element loops gave, bit for bit: every bf16 and
 * f16 pattern, unaligned file offsets, chunk and band boundaries (small chunks here).
 */
class FloatCopyTest {

    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    @Test
    void everyHalfPatternWidensAsTheScalarConversion() {
        try (Arena a = Arena.ofConfined()) {
            int n = 1 << 16;
            MemorySegment src = a.allocate(2L * n + 3), dst = a.allocate(4L * (n + 5), 4);
            ByteBuffer b = src.asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) b.putShort(3 + 2 * i, (short) i); // odd byte offset: unaligned
            for (FloatCopy.Half kind : FloatCopy.Half.values()) {
                FloatCopy.fromHalf(kind, src, 3, dst, 5, n, 7);
                for (int i = 0; i < n; i++) {
                    float want = kind == FloatCopy.Half.BF16 ? BFloat16.toFloat((short) i) : Float.float16ToFloat((short) i);
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(dst.getAtIndex(F, 5 + i)),
                            kind + " pattern " + i);
                }
            }
        }
    }

    @Test
    void float32ReadsAndWritesLittleEndianBytesExactly() {
        Random r = new Random(2);
        int n = 1001;
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = Float.intBitsToFloat(r.nextInt()); // NaNs and subnormals included
        try (Arena a = Arena.ofConfined()) {
            MemorySegment file = a.allocate(4L * n + 1), floats = a.allocate(4L * (n + 2), 4), back = a.allocate(4L * n + 1);
            ByteBuffer b = file.asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) b.putFloat(1 + 4 * i, v[i]);
            FloatCopy.fromLittleEndian(file, 1, floats, 2, n);
            for (int i = 0; i < n; i++) {
                assertEquals(Float.floatToRawIntBits(v[i]), Float.floatToRawIntBits(floats.getAtIndex(F, 2 + i)), "element " + i);
            }
            FloatCopy.toLittleEndian(floats, 2, back, 1, n);
            assertEquals(-1L, file.mismatch(back), "written bytes as read");
        }
    }

    @Test
    void bf16WritesRoundAsTheScalarConversion() {
        Random r = new Random(3);
        int n = 5000;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment src = a.allocate(4L * (n + 1), 4), dst = a.allocate(2L * n + 1);
            for (int i = 0; i < n; i++) src.setAtIndex(F, 1 + i, Float.intBitsToFloat(r.nextInt()));
            FloatCopy.toBf16(src, 1, dst, 1, n, 13);
            ByteBuffer b = dst.asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) {
                assertEquals(BFloat16.fromFloat(src.getAtIndex(F, 1 + i)), b.getShort(1 + 2 * i), "element " + i);
            }
        }
    }

    @Test
    void transposeMatchesTheNaiveLoopAcrossBands() {
        int rows = 37, cols = 11;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment src = a.allocate(4L * (rows * cols + 3), 4), dst = a.allocate(4L * (rows * cols + 2), 4);
            for (int i = 0; i < rows * cols; i++) src.setAtIndex(F, 3 + i, i * 0.5f);
            for (int band : new int[]{1, 150, 1 << 20}) { // one column, 4 columns with a tail of 3, all at once
                dst.fill((byte) 0);
                FloatCopy.transpose(src, 3, dst, 2, rows, cols, band);
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) {
                        assertEquals(src.getAtIndex(F, 3 + (long) r * cols + c), dst.getAtIndex(F, 2 + (long) c * rows + r),
                                "band " + band + " (" + r + ", " + c + ")");
                    }
                }
            }
        }
    }
}
