package gpt2.backend.cuda;

import gpt2.backend.DType;

import java.util.List;

/**
 * A device array of pointers to the matrices of a batched GEMM (cublasGemmBatchedEx's Aarray),
 * with what it points into kept on the host so each use can be checked: every matrix, at its
 * offset, must fit the buffer it lies in.
 */
record PointerTable(CudaBuffer device, List<Launcher.Operand> operands) {

    int size() {
        return operands.size();
    }

    DType dtype() {
        return operands.getFirst().base().dtype();
    }

    /** Every matrix of rows x cols (column-major, leading dimension ld) fits its buffer. */
    void checkExtent(String name, int rows, int cols, int ld) {
        long need = (long) ld * (cols - 1) + rows;
        for (Launcher.Operand o : operands) {
            if (ld < rows || o.offset() < 0 || o.offset() + need > o.base().length() || o.base().dtype() != dtype()) {
                throw new IllegalArgumentException("GEMM operand " + name + ": " + rows + " x " + cols + " (ld " + ld + ") at element "
                        + o.offset() + " does not fit a buffer of " + o.base().length() + " x " + o.base().dtype());
            }
        }
    }
}
