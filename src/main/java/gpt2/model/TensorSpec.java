package gpt2.model;

import java.util.Arrays;

/**
 * One named tensor inside a flat buffer: where it starts and its shape. Made only by the
 * layouts ({@link ParameterLayout}, {@link ActivationLayout}).
 *
 * @param name   a Hugging Face style name, e.g. {@code h.3.attn.c_attn.weight}
 * @param offset first element, in elements (not bytes)
 * @param shape  row-major shape
 * @param layer  the transformer layer it belongs to, or -1
 */
public record TensorSpec(String name, long offset, long[] shape, int layer) implements gpt2.backend.Span {

    public TensorSpec {
        shape = shape.clone();
    }

    @Override
    public long size() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    public long end() {
        return offset + size();
    }

    public int rank() {
        return shape.length;
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long dim(int i) {
        return shape[i];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorSpec t && t.name.equals(name) && t.offset == offset
                && Arrays.equals(t.shape, shape) && t.layer == layer;
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Long.hashCode(offset);
    }

    @Override
    public String toString() {
        return name + Arrays.toString(shape) + "@" + offset;
    }
}
