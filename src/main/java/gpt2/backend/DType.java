package gpt2.backend;

/** Element types a {@link Buffer} can hold. */
public enum DType {
    F32(4), BF16(2), F64(8), I32(4), I64(8);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }
}
