package gpt2.cli;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * SIGTERM and SIGINT ask the training loop to stop after the current step with a checkpoint
 * (preemptible clusters send SIGTERM); a second SIGINT exits at once.
 */
@SuppressWarnings("sunapi")
final class StopSignals {
    private final AtomicBoolean requested = new AtomicBoolean();

    private StopSignals() {
    }

    static StopSignals install() {
        StopSignals s = new StopSignals();
        for (String name : new String[]{"TERM", "INT"}) {
            try {
                sun.misc.Signal.handle(new sun.misc.Signal(name), sig -> {
                    if (s.requested.getAndSet(true) && sig.getName().equals("INT")) System.exit(130);
                    System.err.println("gpt2: SIG" + sig.getName() + " received: finishing the current step, then a checkpoint");
                });
            } catch (IllegalArgumentException | UnsupportedOperationException e) {
                // this platform does not let us handle the signal: the default (exit) stays
            }
        }
        return s;
    }

    boolean requested() {
        return requested.get();
    }
}
