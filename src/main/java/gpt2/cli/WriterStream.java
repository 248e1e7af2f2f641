package gpt2.cli;

import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;

/** Bytes written to a PrintWriter (so library code that logs to a PrintStream reaches picocli's out). */
final class WriterStream extends OutputStream {
    private final PrintWriter out;
    private final java.io.ByteArrayOutputStream pending = new java.io.ByteArrayOutputStream();

    WriterStream(PrintWriter out) {
        this.out = out;
    }

    @Override
    public void write(int b) {
        pending.write(b);
        if (b == '\n') flush();
    }

    @Override
    public void flush() {
        out.print(pending.toString(StandardCharsets.UTF_8));
        out.flush();
        pending.reset();
    }
}
