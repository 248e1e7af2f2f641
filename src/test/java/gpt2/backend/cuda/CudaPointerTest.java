package gpt2.backend.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The raw-address pointers handed to CUDA and cuBLAS carry the address (no GPU needed). */
class CudaPointerTest {
    @Test
    void pointerCarriesTheAddress() {
        assertEquals(0x7f00_1234_5000L, gpt2.backend.RawPointer.at(0x7f00_1234_5000L).address());
        assertEquals(0x7f00_1234_5000L, gpt2.backend.RawPointer.floats(0x7f00_1234_5000L).address());
    }
}
