package gpt2.backend;

/**
 * A run of elements within a flat buffer: what {@link Buffer#slice(Span)} needs of a layout's
 * tensor (the layouts in {@code gpt2.model} implement it), so the backend layer depends on no model
 * class.
 */
public interface Span {

    /** First element, in elements (not bytes). */
    long offset();

    /** Number of elements. */
    long size();
}
