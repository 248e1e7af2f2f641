package gpt2.backend.cpu;

import gpt2.backend.Buffer;
import gpt2.backend.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Off-heap host memory: a {@link MemorySegment} of float32 or int32 elements. An allocation owns
 * its arena (freed by {@code Backend.free}); slices own nothing.
 */
record CpuBuffer(MemorySegment segment, DType dtype, long length, Arena owner) implements Buffer {

    @Override
    public Buffer slice(long offset, long length) {
        Buffer.checkSlice(offset, length, this.length);
        return new CpuBuffer(segment.asSlice(offset * dtype.bytes(), length * dtype.bytes()), dtype, length, null);
    }
}
