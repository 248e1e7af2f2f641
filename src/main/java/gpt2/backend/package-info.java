/**
 * The device abstraction: {@link gpt2.backend.Backend} (memory and ops), {@link gpt2.backend.Buffer}
 * (flat memory with views), {@link gpt2.backend.Dropout} (counter-based masks).
 *
 * <p><b>Gradient rule</b>, for every backend and op: parameter gradients accumulate ({@code +=});
 * activation gradients are overwritten ({@code =}), except along the residual stream, where the
 * norms' backward passes add into the running residual gradient. Gradient accumulation over
 * micro-batches therefore needs no extra buffers: zero the parameter gradients once per step.
 *
 * <p>A new backend (CUDA today, TornadoVM later) implements {@link gpt2.backend.Backend} and is
 * checked against the CPU backend op by op.
 */
package gpt2.backend;
