package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;

/** Device memory: a raw device address, its element type and length; slices share the allocation. */
record CudaBuffer(long address, DType dtype, long length, boolean owner) implements Buffer {

    @Override
    public Buffer slice(long offset, long length) {
        Buffer.checkSlice(offset, length, this.length);
        return new CudaBuffer(address + offset * dtype.bytes(), dtype, length, false);
    }

    long bytes() {
        return length * dtype.bytes();
    }
}
