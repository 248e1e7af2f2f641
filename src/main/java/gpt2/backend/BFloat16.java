package gpt2.backend;

/**
 * bfloat16 as 16 bits in a short: the top half of a float32. The rounding is the same as the CUDA
 * kernels' ({@code bf16_bits} in kernels/common.cuh; a test compares the two bit for bit).
 */
public final class BFloat16 {
    private BFloat16() {
    }

    /** float32 to bfloat16, round to nearest even; NaN stays a (quiet) NaN. */
    public static short fromFloat(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (short) ((u >>> 16) | 0x40);
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    public static float toFloat(short b) {
        return Float.intBitsToFloat((b & 0xffff) << 16);
    }

    /** f rounded to the nearest bfloat16, as a float. */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }
}
