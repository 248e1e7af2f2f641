package gpt2.backend;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * JavaCPP pointers at raw addresses: device memory for CUDA, cuBLAS and NCCL, off-heap
 * MemorySegments for OpenBLAS. The one place that sets a Pointer's address.
 */
public final class RawPointer {
    private RawPointer() {
    }

    public static Pointer at(long raw) {
        // (the parameter is not called "address": inside the anonymous class that name is the field)
        return new Pointer() {
            {
                address = raw;
            }
        };
    }

    public static FloatPointer floats(long raw) {
        return new FloatPointer(at(raw));
    }
}
