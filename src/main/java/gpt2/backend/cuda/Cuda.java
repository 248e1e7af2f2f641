package gpt2.backend.cuda;

import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nvrtc;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * Checked wrappers: every CUDA runtime, driver, cuBLAS and NVRTC call goes through one of these,
 * which throw with the call's name, the error and a hint.
 */
final class Cuda {
    private Cuda() {
    }

    /** A CUDA runtime call's status. */
    static void check(int status, String call) {
        if (status != cudart.cudaSuccess) {
            String msg = stringOf(cudart.cudaGetErrorString(status));
            String hint = status == cudart.cudaErrorMemoryAllocation
                    ? " (out of GPU memory: try a smaller --batch_size)" : "";
            throw new CudaException(call + " failed: " + msg + " (" + status + ")" + hint);
        }
    }

    /** A CUDA driver call's status. */
    static void checkDriver(int status, String call) {
        if (status != 0) {
            BytePointer s = new BytePointer((Pointer) null);
            cudart.cuGetErrorString(status, s);
            throw new CudaException(call + " failed: " + (s.isNull() ? "error" : s.getString()) + " (" + status + ")");
        }
    }

    static void checkBlas(int status, String call) {
        if (status != cublas.CUBLAS_STATUS_SUCCESS) {
            throw new CudaException(call + " failed: " + stringOf(cublas.cublasGetStatusString(status)) + " (" + status + ")");
        }
    }

    static void checkNvrtc(int status, String call) {
        if (status != nvrtc.NVRTC_SUCCESS) {
            throw new CudaException(call + " failed: " + stringOf(nvrtc.nvrtcGetErrorString(status)));
        }
    }

    private static String stringOf(BytePointer p) {
        return p == null || p.isNull() ? "unknown error" : p.getString();
    }

    /** A CUDA failure. */
    static final class CudaException extends RuntimeException {
        CudaException(String message) {
            super(message);
        }
    }
}
