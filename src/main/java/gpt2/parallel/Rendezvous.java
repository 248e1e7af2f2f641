package gpt2.parallel;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

/**
 * torchrun-style rendezvous over TCP: rank 0 listens on MASTER_ADDR:MASTER_PORT and hands a payload
 * (NCCL's unique id) to every other rank; the others connect with retries. Either side gives up after
 * the timeout with a message naming the address and the ranks that never arrived.
 */
public final class Rendezvous {
    private Rendezvous() {
    }

    /** Rank 0: serves {@code payload} to ranks 1..world-1; returns once all have it. */
    public static void serve(String addr, int port, int world, byte[] payload, Duration timeout) {
        TreeSet<Integer> missing = new TreeSet<>();
        for (int r = 1; r < world; r++) missing.add(r);
        long deadline = System.nanoTime() + timeout.toNanos();
        try (ServerSocket server = new ServerSocket()) {
            server.setReuseAddress(true);
            server.bind(new InetSocketAddress(addr, port));
            while (!missing.isEmpty()) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                if (left <= 0) break;
                server.setSoTimeout((int) Math.min(Integer.MAX_VALUE, left));
                try (Socket s = server.accept()) {
                    DataInputStream in = new DataInputStream(s.getInputStream());
                    int rank = in.readInt();
                    DataOutputStream out = new DataOutputStream(s.getOutputStream());
                    out.writeInt(payload.length);
                    out.write(payload);
                    out.flush();
                    missing.remove(rank);
                } catch (SocketTimeoutException e) {
                    break;
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("rendezvous: rank 0 cannot listen on " + addr + ":" + port + " (" + e.getMessage() + ")");
        }
        if (!missing.isEmpty()) {
            throw new IllegalStateException("rendezvous on " + addr + ":" + port + " timed out after " + timeout.toSeconds()
                    + " s: ranks " + missing + " of " + world + " never arrived");
        }
    }

    /** Ranks 1..world-1: fetches the payload from rank 0, retrying until the timeout. */
    public static byte[] fetch(String addr, int port, int rank, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<String> errors = new ArrayList<>();
        while (System.nanoTime() < deadline) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(addr, port), 2000);
                s.setSoTimeout((int) Math.max(1000, (deadline - System.nanoTime()) / 1_000_000));
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(rank);
                out.flush();
                DataInputStream in = new DataInputStream(s.getInputStream());
                byte[] payload = new byte[in.readInt()];
                in.readFully(payload);
                return payload;
            } catch (IOException e) {
                if (errors.isEmpty() || !errors.getLast().equals(e.getMessage())) errors.add(e.getMessage());
                try {
                    Thread.sleep(200);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        throw new IllegalStateException("rendezvous: rank " + rank + " could not reach rank 0 at " + addr + ":" + port
                + " within " + timeout.toSeconds() + " s (" + (errors.isEmpty() ? "no answer" : errors.getLast()) + ")");
    }
}
