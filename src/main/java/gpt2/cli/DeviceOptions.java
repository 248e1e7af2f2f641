package gpt2.cli;

import picocli.CommandLine.Option;

/** --device and --threads, shared by the commands that run a model outside training. */
final class DeviceOptions {

    @Option(names = "--device", defaultValue = "", description = "cpu, cuda or cuda:N (default: cuda when present).")
    String device;

    @Option(names = "--threads", defaultValue = "0", description = "CPU threads (0: one per core).")
    int threads;
}
