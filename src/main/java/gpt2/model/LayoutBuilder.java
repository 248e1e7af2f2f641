package gpt2.model;

import java.util.ArrayList;
import java.util.List;

/** Appends tensors one after another; the only place offsets are computed. */
final class LayoutBuilder {
    private final List<TensorSpec> tensors = new ArrayList<>();
    private long next;

    TensorSpec add(String name, int layer, long... shape) {
        TensorSpec t = new TensorSpec(name, next, shape, layer);
        tensors.add(t);
        next = t.end();
        return t;
    }

    /** A tensor only when {@code present}; null otherwise. */
    TensorSpec addIf(boolean present, String name, int layer, long... shape) {
        return present ? add(name, layer, shape) : null;
    }

    List<TensorSpec> tensors() {
        return List.copyOf(tensors);
    }

    long size() {
        return next;
    }
}
