package gpt2.backend;

/**
 * A flat run of elements in a backend's memory (off-heap host memory on the CPU, device memory
 * on a GPU). Views made by {@link #slice} share the memory of their parent; the layouts in
 * {@code gpt2.model} are the only code that computes the offsets passed to it.
 */
public interface Buffer {

    /** Number of elements. */
    long length();

    DType dtype();

    /** A view of {@code length} elements starting at element {@code offset}. */
    Buffer slice(long offset, long length);

    /** Refuses a slice [offset, offset + length) outside a buffer of {@code size} elements. */
    static void checkSlice(long offset, long length, long size) {
        if (offset < 0 || length < 0 || offset + length > size) {
            throw new IndexOutOfBoundsException("slice [" + offset + ", " + (offset + length)
                    + ") outside a buffer of " + size + " elements");
        }
    }

    /** The view of one tensor of a layout. */
    default Buffer slice(Span tensor) {
        return slice(tensor.offset(), tensor.size());
    }
}
