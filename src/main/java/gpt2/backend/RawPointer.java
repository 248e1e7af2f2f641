package gpt2.backend;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

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

    /**
     * An array of pointers at a raw address (e.g. a device table of device pointers for a
     * pointer-array GEMM), passed as that address. (The FloatPointer/Pointer overloads of such
     * parameters are @ByPtrPtr: they would pass the address of a local holding the address.)
     */
    public static PointerPointer<Pointer> table(long raw) {
        return new PointerPointer<>(at(raw));
    }
}
