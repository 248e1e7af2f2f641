package gpt2.backend.cuda;

import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;

import static gpt2.backend.RawPointer.at;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the CUDA library stand-ins check, through the same JavaCPP bindings the project uses: that
 * they are what answered (not an installed CUDA), device pointers against the registry of live
 * allocations (a host address, a freed buffer, a range past an allocation's end: an error naming
 * the call and the argument), and CUDA's rules during a stream capture (an allocation or a
 * synchronous copy there fails and invalidates the capture; work forked to another stream must be
 * joined back). None of these errors is sticky, so the JVM's other stand-in tests go on.
 */
@Tag("standin")
class CudaStandinChecksTest {

    @BeforeAll
    static void standins() {
        CudaStandins.assumeStandins("CudaStandinChecksTest");
    }

    static String message(int status) {
        return cudart.cudaGetErrorString(status).getString();
    }

    static long malloc(long bytes) {
        Pointer p = new Pointer();
        assertEquals(0, cudart.cudaMalloc(p, bytes));
        return p.address();
    }

    @Test
    void theStandInsAnswer() {
        int[] n = new int[1];
        assertEquals(0, cudart.cudaGetDeviceCount(n)); // loads JavaCPP's cudart, bound to the stand-ins
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup libcuda = SymbolLookup.libraryLookup("libcuda.so.1", arena); // the one loaded, by soname
            MemorySegment fn = libcuda.find("gpt2_cuda_standin").orElseThrow(
                    () -> new AssertionError("the libcuda.so.1 in this JVM is not the stand-in"));
            MemorySegment s = (MemorySegment) Linker.nativeLinker().downcallHandle(fn, FunctionDescriptor.of(ValueLayout.ADDRESS))
                    .invokeExact();
            assertEquals("gpt2-java CUDA stand-ins (CPU)", s.reinterpret(64).getString(0));
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    @Test
    void devicePointersAreCheckedAgainstLiveAllocations() {
        long dev = malloc(64);
        try (BytePointer host = new BytePointer(256)) {
            int s = cudart.cudaMemcpy(host, at(dev), 64, cudart.cudaMemcpyHostToDevice); // swapped arguments
            assertNotEquals(0, s);
            assertTrue(message(s).contains("cudaMemcpy: src 0x") && message(s).contains("is device memory, but the copy's kind says host"),
                    message(s));
            cudart.cudaGetLastError();
            s = cudart.cudaMemcpy(host, host, 64, cudart.cudaMemcpyHostToDevice); // a host address as the device pointer
            assertTrue(message(s).contains("cudaMemcpy: dst 0x") && message(s).contains("is not device memory"), message(s));
            cudart.cudaGetLastError();
            s = cudart.cudaMemcpy(at(dev), host, 100, cudart.cudaMemcpyHostToDevice);
            assertTrue(message(s).contains("needs 100 bytes but its 64-byte allocation"), message(s));
            cudart.cudaGetLastError();
        }
        assertEquals(0, cudart.cudaFree(at(dev)));
        int s = cudart.cudaMemset(at(dev + 16), 0, 8);
        assertTrue(message(s).contains("cudaMemset: devPtr") && message(s).contains("freed"), message(s));
        assertEquals(s, cudart.cudaGetLastError());
        assertEquals(0, cudart.cudaGetLastError(), "not sticky");
        s = cudart.cudaFree(at(dev));
        assertTrue(message(s).contains("already freed"), message(s));
        cudart.cudaGetLastError();
    }

    @Test
    void captureRefusesAllocationsAndSynchronousCopies() {
        CUstream_st stream = new CUstream_st();
        assertEquals(0, cudart.cudaStreamCreateWithFlags(stream, cudart.cudaStreamDefault));
        long dev = malloc(1024);
        try (BytePointer host = new BytePointer(1024)) {
            // an allocation inside the capture
            assertEquals(0, cudart.cuStreamBeginCapture(stream, cudart.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
            assertEquals(0, cudart.cudaMemsetAsync(at(dev), 0, 1024, stream));
            Pointer p = new Pointer();
            int s = cudart.cudaMalloc(p, 16);
            assertEquals(cudart.cudaErrorStreamCaptureUnsupported, s, message(s));
            CUgraph_st graph = new CUgraph_st();
            assertEquals(cudart.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, cudart.cuStreamEndCapture(stream, graph));
            // a synchronous copy (the legacy stream waits for the blocking stream being captured)
            assertEquals(0, cudart.cuStreamBeginCapture(stream, cudart.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
            s = cudart.cudaMemcpy(at(dev), host, 1024, cudart.cudaMemcpyHostToDevice);
            assertEquals(cudart.cudaErrorStreamCaptureImplicit, s, message(s));
            assertEquals(cudart.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, cudart.cuStreamEndCapture(stream, graph));
            cudart.cudaGetLastError();
        }
        assertEquals(0, cudart.cudaFree(at(dev)));
        assertEquals(0, cudart.cudaStreamDestroy(stream));
    }

    @Test
    void forkedWorkMustBeJoinedBeforeTheCaptureEnds() {
        CUstream_st main = new CUstream_st(), side = new CUstream_st();
        assertEquals(0, cudart.cudaStreamCreateWithFlags(main, cudart.cudaStreamDefault));
        assertEquals(0, cudart.cudaStreamCreateWithFlags(side, cudart.cudaStreamNonBlocking));
        CUevent_st fork = new CUevent_st(), join = new CUevent_st();
        assertEquals(0, cudart.cudaEventCreateWithFlags(fork, cudart.cudaEventDisableTiming));
        assertEquals(0, cudart.cudaEventCreateWithFlags(join, cudart.cudaEventDisableTiming));
        long dev = malloc(256);
        for (boolean joined : new boolean[]{false, true}) {
            assertEquals(0, cudart.cuStreamBeginCapture(main, cudart.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
            assertEquals(0, cudart.cudaEventRecord(fork, main));
            assertEquals(0, cudart.cudaStreamWaitEvent(side, fork, 0)); // side joins the capture
            assertEquals(0, cudart.cudaMemsetAsync(at(dev), 1, 256, side));
            if (joined) {
                assertEquals(0, cudart.cudaEventRecord(join, side));
                assertEquals(0, cudart.cudaStreamWaitEvent(main, join, 0));
            }
            CUgraph_st graph = new CUgraph_st();
            int s = cudart.cuStreamEndCapture(main, graph);
            if (!joined) {
                assertEquals(cudart.CUDA_ERROR_STREAM_CAPTURE_UNJOINED, s);
                cudart.cudaGetLastError();
                continue;
            }
            assertEquals(0, s);
            assertEquals(0, cudart.cuGraphDestroy(graph));
        }
        assertEquals(0, cudart.cudaFree(at(dev)));
        cudart.cudaEventDestroy(fork);
        cudart.cudaEventDestroy(join);
        cudart.cudaStreamDestroy(main);
        cudart.cudaStreamDestroy(side);
    }
}
