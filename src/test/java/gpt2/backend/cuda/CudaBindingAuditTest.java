package gpt2.backend.cuda;

import org.bytedeco.javacpp.annotation.ByPtrPtr;
import org.bytedeco.javacpp.annotation.ByPtrRef;
import org.bytedeco.javacpp.annotation.ByRef;
import org.junit.jupiter.api.Test;

import java.lang.annotation.Annotation;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The JavaCPP overload a call resolves to decides what reaches the C function: a parameter
 * annotated {@code @ByPtrPtr} (or {@code @ByRef}, {@code @ByPtrRef}) passes the address of a
 * pointer, not the pointer, which is right for an out-parameter (cudaMalloc's devPtr) and wrong for
 * an input array (cublasSgemmBatched's Aarray: the device table's address must go in, and the
 * FloatPointer overload passed a stack address). Every call from the main classes is read from the
 * bytecode, and every such parameter must be on this list of out-parameters, with its reason.
 */
class CudaBindingAuditTest {

    /** preset.method#parameter index (0-based) -> why passing a pointer's address is right there. */
    static final Map<String, String> OUT_PARAMETERS = new TreeMap<>(Map.ofEntries(
            Map.entry("cudart.cudaMalloc#0", "out: the new device pointer"),
            Map.entry("cudart.cudaMallocHost#0", "out: the new pinned host pointer"),
            Map.entry("cudart.cudaStreamCreateWithFlags#0", "out: the new stream"),
            Map.entry("cudart.cudaEventCreate#0", "out: the new event"),
            Map.entry("cudart.cudaEventCreateWithFlags#0", "out: the new event"),
            Map.entry("cudart.cuGetErrorString#1", "out: the driver's message"),
            Map.entry("cudart.cuModuleLoadData#0", "out: the loaded module"),
            Map.entry("cudart.cuModuleGetFunction#0", "out: the kernel handle"),
            Map.entry("cudart.cuStreamEndCapture#1", "out: the captured graph"),
            Map.entry("cudart.cuGraphInstantiate#0", "out: the executable graph"),
            Map.entry("cudart.cuStreamGetCaptureInfo#3", "out: the capture's graph (passed null)"),
            Map.entry("cudart.cuStreamGetCaptureInfo#4", "out: the node array; JavaCPP points the PointerPointer at it"),
            Map.entry("cublas.cublasCreate_v2#0", "out: the cuBLAS handle"),
            Map.entry("cublas.cublasLtCreate#0", "out: the cuBLASLt handle"),
            Map.entry("nccl.ncclCommInitRank#0", "out: the communicator"),
            Map.entry("nvrtc.nvrtcCreateProgram#0", "out: the program"),
            Map.entry("nvrtc.nvrtcDestroyProgram#0", "in/out: the program, set to null")));

    private static final List<Class<? extends Annotation>> BY_ADDRESS = List.of(ByPtrPtr.class, ByRef.class, ByPtrRef.class);

    @Test
    void everyPointerPassedByAddressIsAnOutParameter() throws Exception {
        List<PresetCalls.Call> calls = PresetCalls.all();
        assertTrue(calls.size() > 60, "found only " + calls.size() + " calls into the CUDA presets: " + calls);
        List<String> wrong = new ArrayList<>();
        TreeSet<String> used = new TreeSet<>();
        for (PresetCalls.Call c : calls) {
            Method m = c.method();
            Annotation[][] annotations = m.getParameterAnnotations();
            for (int i = 0; i < annotations.length; i++) {
                for (Annotation a : annotations[i]) {
                    if (!BY_ADDRESS.contains(a.annotationType())) continue;
                    String key = c.preset() + "." + c.name() + "#" + i;
                    if (OUT_PARAMETERS.containsKey(key)) {
                        used.add(key);
                    } else {
                        wrong.add(key + " (@" + a.annotationType().getSimpleName() + " " + m.getParameterTypes()[i].getSimpleName()
                                + ", called from " + c.caller() + ")");
                    }
                }
            }
        }
        System.out.println("  " + calls.size() + " calls into the CUDA presets; " + used.size() + " pass an out-parameter by address");
        assertTrue(wrong.isEmpty(), "parameters passed by address that are not known out-parameters (use the PointerPointer "
                + "overload for an input array, or add the parameter with its reason): " + wrong);
        TreeSet<String> stale = new TreeSet<>(OUT_PARAMETERS.keySet());
        stale.removeAll(used);
        assertTrue(stale.isEmpty(), "allowlist entries no call uses any more (remove them): " + stale);
    }

    /** The audit sees what it should: the overload defect 1 of issue 21 used is flagged. */
    @Test
    void theFloatPointerOverloadOfSgemmBatchedPassesTheTableByAddress() throws Exception {
        Method m = org.bytedeco.cuda.global.cublas.class.getDeclaredMethod("cublasSgemmBatched",
                Class.forName("org.bytedeco.cuda.cublas.cublasContext", false, getClass().getClassLoader()), int.class, int.class,
                int.class, int.class, int.class, org.bytedeco.javacpp.FloatPointer.class, org.bytedeco.javacpp.FloatPointer.class,
                int.class, org.bytedeco.javacpp.FloatPointer.class, int.class, org.bytedeco.javacpp.FloatPointer.class,
                org.bytedeco.javacpp.FloatPointer.class, int.class, int.class);
        boolean byAddress = false;
        for (Annotation a : m.getParameterAnnotations()[7]) byAddress |= a.annotationType() == ByPtrPtr.class;
        assertTrue(byAddress, "cublasSgemmBatched(FloatPointer Aarray) is expected to be @ByPtrPtr");
        assertTrue(!OUT_PARAMETERS.containsKey("cublas.cublasSgemmBatched#7"));
    }
}
