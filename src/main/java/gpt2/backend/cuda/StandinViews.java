package gpt2.backend.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Where the CUDA in this process is the project's CPU stand-in of libcuda (CI, see the test
 * sources' CudaStandins), it takes one call NVIDIA's driver has no counterpart for:
 * {@code gpt2_standin_launch_extents}, the bytes of the buffer view behind each argument of the
 * next launch, so the stand-in checks a kernel's loads and stores against the slice it was given
 * and not only against the allocation the slice lies in. On a GPU the symbol is absent and
 * {@link #find} returns null: nothing is called.
 */
final class StandinViews {
    private final MethodHandle call;
    private final MemorySegment extents = Arena.global().allocate(8L * 32, 8);

    private StandinViews(MethodHandle call) {
        this.call = call;
    }

    /** The hook, or null where libcuda.so.1 is NVIDIA's (or not loaded by that name). */
    static StandinViews find() {
        try {
            var fn = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global()).find("gpt2_standin_launch_extents");
            if (fn.isEmpty()) return null;
            return new StandinViews(Linker.nativeLinker().downcallHandle(fn.get(),
                    FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT, ValueLayout.ADDRESS)));
        } catch (IllegalArgumentException | IllegalCallerException e) {
            return null;
        }
    }

    /** The views of the launch (or kernel-node update) this thread makes next: each DevicePointer's bytes, 0 for the rest. */
    void next(Object[] args) {
        int n = Math.min(args.length, 32);
        for (int i = 0; i < n; i++) extents.setAtIndex(ValueLayout.JAVA_LONG, i, args[i] instanceof DevicePointer p ? p.bytes() : 0);
        try {
            call.invokeExact(n, extents);
        } catch (Throwable t) {
            throw new IllegalStateException("the CUDA stand-in's launch-extents hook failed", t);
        }
    }
}
