package gpt2.backend.cuda;

/**
 * A kernel's pointer argument as the {@link Launcher} hands it to an {@link Executor}: the device
 * address and the bytes of the buffer view it points into (a slice knows its own length, the
 * device does not). A GPU needs only the address; the CUDA library stand-ins in CI also take the
 * extent, to check the kernel's loads and stores against the view rather than the whole allocation.
 * Null pointers are address 0, extent 0.
 */
record DevicePointer(long address, long bytes) {
    static final DevicePointer NULL = new DevicePointer(0, 0);
}
