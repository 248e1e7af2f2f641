package gpt2.backend.cuda;

import java.util.List;

/**
 * Child-JVM entry point of {@link NvrtcCompileTest}: loads an empty stand-in libcuda.so.1 (so the
 * CUDA libraries load on a machine without a driver; this JVM can then never reach a GPU), then
 * compiles every kernel family with NVRTC for each architecture given, with floatX = float and bf16.
 * Usage: NvrtcCheck STUB_LIBCUDA ARCH...
 */
public final class NvrtcCheck {
    private NvrtcCheck() {
    }

    public static void main(String[] args) {
        System.load(args[0]);
        System.out.println("nvrtc " + KernelCompiler.nvrtcVersion());
        for (int i = 1; i < args.length; i++) {
            for (String family : KernelCompiler.FAMILIES) for (boolean bf16 : new boolean[]{false, true}) {
                byte[] cubin = KernelCompiler.compile(family, KernelCompiler.source(family), args[i],
                        KernelCompiler.precisionOptions(bf16));
                String text = new String(cubin, java.nio.charset.StandardCharsets.ISO_8859_1);
                List<String> names = KernelCompiler.kernelNames(family);
                for (String n : names) {
                    if (!text.contains(n)) throw new IllegalStateException(family + " for " + args[i] + ": " + n + " missing");
                }
                System.out.println("compiled " + family + (bf16 ? " (bf16)" : " (float)") + " " + args[i] + " " + cubin.length + " bytes " + names.size() + " kernels");
            }
        }
    }
}
