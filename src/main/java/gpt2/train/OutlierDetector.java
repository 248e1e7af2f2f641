package gpt2.train;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * llm.c's outlier detector: the z-score of a new value against a moving window of the last
 * {@link #WINDOW} values (NaN until the window is full). Its whole state goes into checkpoints so a
 * resumed run judges steps as the uninterrupted one would.
 */
public final class OutlierDetector {

    public static final int WINDOW = 128;

    private final double[] buffer = new double[WINDOW];
    private int count, index;
    private double sum, sumSq;

    /** Adds a finite value; returns its z-score against the window before it (NaN while filling). */
    public double update(double x) {
        if (!Double.isFinite(x)) return Double.NaN;
        if (count < WINDOW) {
            buffer[count++] = x;
            sum += x;
            sumSq += x * x;
            return Double.NaN;
        }
        double mean = sum / WINDOW;
        double std = Math.sqrt(Math.max(0, sumSq / WINDOW - mean * mean));
        double z = std == 0 ? Double.NaN : (x - mean) / std;
        double old = buffer[index];
        sum += x - old;
        sumSq += x * x - old * old;
        buffer[index] = x;
        index = (index + 1) % WINDOW;
        return z;
    }

    public ObjectNode toJson() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("count", count).put("index", index).put("sum", sum).put("sum_sq", sumSq);
        ArrayNode a = o.putArray("buffer");
        for (int i = 0; i < count; i++) a.add(buffer[i]);
        return o;
    }

    public void restore(ObjectNode o) {
        if (o == null) return;
        count = o.path("count").asInt();
        index = o.path("index").asInt();
        sum = o.path("sum").asDouble();
        sumSq = o.path("sum_sq").asDouble();
        for (int i = 0; i < count; i++) buffer[i] = o.path("buffer").get(i).asDouble();
    }
}
