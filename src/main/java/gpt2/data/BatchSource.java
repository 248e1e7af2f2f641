package gpt2.data;

/** Where training batches come from: fills B*T inputs and their next-token targets. */
public interface BatchSource {

    void next(int[] inputs, int[] targets);

    /** Back to the first batch. */
    void reset();
}
