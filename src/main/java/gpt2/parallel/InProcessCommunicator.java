package gpt2.parallel;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;

import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Ranks as threads of one JVM, for testing the data-parallel logic on the CPU (not a product
 * transport). Sums run on rank 0 in rank order, so results do not depend on thread timing.
 *
 * <pre>
 * each rank: copy its buffer to the host -> barrier -> rank 0 sums in rank order -> barrier
 *            -> copy the result back
 * </pre>
 */
public final class InProcessCommunicator {

    private final int world;
    private final CyclicBarrier barrier;
    private final float[][] slots;
    private final double[] scalars;
    private float[] result;
    private double scalarResult;

    public InProcessCommunicator(int world) {
        if (world < 1) throw new IllegalArgumentException("world size must be >= 1");
        this.world = world;
        this.barrier = new CyclicBarrier(world);
        this.slots = new float[world][];
        this.scalars = new double[world];
    }

    /** The communicator rank {@code r} uses. */
    public Communicator rank(int r) {
        if (r < 0 || r >= world) throw new IllegalArgumentException("rank " + r + " outside world " + world);
        return new Communicator() {
            public int rank() {
                return r;
            }

            public int worldSize() {
                return world;
            }

            public void allReduceAverage(Backend backend, Buffer buffer) {
                float[] mine = new float[(int) buffer.length()];
                backend.read(buffer, mine);
                slots[r] = mine;
                await();
                if (r == 0) {
                    float[] sum = slots[0].clone();
                    for (int k = 1; k < world; k++) {
                        float[] other = slots[k];
                        for (int i = 0; i < sum.length; i++) sum[i] += other[i];
                    }
                    for (int i = 0; i < sum.length; i++) sum[i] /= world;
                    result = sum;
                }
                await();
                backend.write(buffer, result);
                await();
            }

            public void reduceScatterAverage(Backend backend, Buffer buffer) {
                allReduceAverage(backend, buffer); // every shard holds the mean, which includes ours
            }

            public void allGather(Backend backend, Buffer buffer) {
                float[] mine = new float[(int) buffer.length()];
                backend.read(buffer, mine);
                slots[r] = mine;
                await();
                float[] full = new float[mine.length];
                for (int k = 0; k < world; k++) {
                    long[] sh = Communicator.shard(full.length, k, world);
                    System.arraycopy(slots[k], (int) sh[0], full, (int) sh[0], (int) (sh[1] - sh[0]));
                }
                await();
                backend.write(buffer, full);
            }

            public double allReduceSum(double value) {
                scalars[r] = value;
                await();
                if (r == 0) {
                    double s = 0;
                    for (double x : scalars) s += x;
                    scalarResult = s;
                }
                await();
                double out = scalarResult;
                await();
                return out;
            }

            public void broadcast(Backend backend, Buffer buffer) {
                if (r == 0) {
                    float[] mine = new float[(int) buffer.length()];
                    backend.read(buffer, mine);
                    result = mine;
                }
                await();
                if (r != 0) backend.write(buffer, result);
                await();
            }

            public void barrier() {
                await();
            }
        };
    }

    private void await() {
        try {
            barrier.await(10, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted waiting for the other ranks");
        } catch (BrokenBarrierException | TimeoutException e) {
            throw new IllegalStateException("another rank failed or never arrived (" + e.getClass().getSimpleName() + ")");
        }
    }
}
