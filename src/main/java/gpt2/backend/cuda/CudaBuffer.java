package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;

/** Device memory: a raw device address, its element type and length; slices share the allocation. */
record CudaBuffer(long address, DType dtype, long length, boolean owner) implements Buffer {

    @Override
    public Buffer slice(long offset, long length) {
        if (offset < 0 || length < 0 || offset + length > this.length) {
            throw new IndexOutOfBoundsException("slice [" + offset + ", " + (offset + length)
                    + ") outside a buffer of " + this.length + " elements");
        }
        return new CudaBuffer(address + offset * dtype.bytes(), dtype, length, false);
    }

    long bytes() {
        return length * dtype.bytes();
    }
}
