package gpt2.serve;

import gpt2.data.StreamDecoder;
import gpt2.data.Tokenizer;
import gpt2.eval.Sampler;
import gpt2.model.Gpt2;
import gpt2.train.Rng;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Generations, one at a time on one worker thread (the backend computes with every core already),
 * behind a bounded queue: a request that finds it full is refused at once ({@link Busy}), never
 * held in memory without bound. Models are loaded on first use and kept, least recently used
 * evicted (and their buffers freed) beyond {@code maxModels}.
 */
final class Generator implements AutoCloseable {

    /** The queue is full: the caller answers 429 with this message. */
    static final class Busy extends RuntimeException {
        Busy(String message) {
            super(message);
        }
    }

    /** A model's files are gone or unreadable: the caller answers 404 with this message. */
    static final class NoModel extends RuntimeException {
        NoModel(String message) {
            super(message);
        }
    }

    /** Thrown from a token callback to end a generation early (the end-of-text token, a client gone). */
    static final class Stop extends RuntimeException {
        Stop() {
            super(null, null, false, false);
        }
    }

    /** What to generate: the prompt's text and the sampling options. */
    record Request(String prompt, int maxTokens, float temperature, int topK, float topP, long seed) {
    }

    /** Receives the text as it is generated. */
    interface Sink {
        /** A piece of text (whole UTF-8 characters); throw {@link Stop} to end. */
        void text(String piece);
    }

    /** The generation's end: why it stopped and the token counts. */
    record Result(String finishReason, int promptTokens, int completionTokens) {
    }

    private final Function<Path, Gpt2> loader;
    private final int maxModels, maxQueue;
    private final ThreadPoolExecutor worker;
    /** Loaded models by checkpoint folder, in access order (touched by the worker thread only). */
    private final LinkedHashMap<Path, Gpt2> models = new LinkedHashMap<>(4, 0.75f, true);
    private final Tokenizer tok = Tokenizer.gpt2();

    Generator(Function<Path, Gpt2> loader, int maxModels, int maxQueue) {
        if (maxModels < 1) throw new IllegalArgumentException("--max_models must be >= 1, got " + maxModels);
        if (maxQueue < 0) throw new IllegalArgumentException("--max_queue must be >= 0, got " + maxQueue);
        this.loader = loader;
        this.maxModels = maxModels;
        this.maxQueue = maxQueue;
        // one running, maxQueue waiting; a SynchronousQueue-like refusal when maxQueue is 0
        this.worker = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS,
                maxQueue == 0 ? new java.util.concurrent.SynchronousQueue<>() : new ArrayBlockingQueue<>(maxQueue), r -> {
                    Thread t = new Thread(r, "gpt2-serve-generation");
                    t.setDaemon(true);
                    return t;
                });
    }

    /** Requests waiting (not counting the one running). */
    int waiting() {
        return worker.getQueue().size();
    }

    /** Whether the model of that checkpoint folder is loaded now (its files were verified when it was). */
    synchronized boolean isLoaded(Path dir) {
        return models.containsKey(dir);
    }

    /**
     * Queues a generation from the checkpoint folder {@code model}; returns when it is done (or
     * failed). {@link Busy} at once when the queue is full.
     */
    Result generate(Path model, Request r, Sink sink) throws InterruptedException {
        Future<Result> f;
        try {
            f = worker.submit(() -> run(model, r, sink));
        } catch (RejectedExecutionException e) {
            throw new Busy("the generation queue is full (" + (worker.getActiveCount()) + " running, " + waiting()
                    + " waiting, --max_queue " + maxQueue + "); try again shortly");
        }
        try {
            return f.get();
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) throw re;
            if (e.getCause() instanceof Error err) throw err;
            throw new IllegalStateException(e.getCause());
        }
    }

    private Result run(Path modelDir, Request r, Sink sink) {
        Gpt2 m = model(modelDir);
        int[] body = tok.encode(r.prompt());
        for (int t : body) {
            if (t >= m.config().vocabSize()) {
                throw new IllegalArgumentException("prompt: token " + t + " is outside this model's vocabulary of "
                        + m.config().vocabSize() + " (a model trained on other tokens)");
            }
        }
        int[] prompt = new int[body.length + 1];
        prompt[0] = Tokenizer.EOT < m.config().vocabSize() ? Tokenizer.EOT : 0; // as gpt2 sample starts
        System.arraycopy(body, 0, prompt, 1, body.length);
        if (prompt.length >= m.config().maxSeqLen()) {
            throw new IllegalArgumentException("prompt is " + prompt.length + " tokens (with the leading end-of-text token); this "
                    + "model's block size is " + m.config().maxSeqLen());
        }
        int maxNew = Math.min(r.maxTokens(), m.config().maxSeqLen() - prompt.length);
        StreamDecoder dec = tok.streamDecoder();
        int[] count = {0};
        String reason = "length";
        try {
            Sampler.generate(m, prompt, new Sampler.Options(maxNew, r.temperature(), r.topK(), r.topP()), new Rng(r.seed()), t -> {
                if (t == Tokenizer.EOT) throw new Stop();
                count[0]++;
                String piece = t < Tokenizer.VOCAB_SIZE ? dec.push(t) : "<" + t + ">";
                if (!piece.isEmpty()) sink.text(piece);
            });
        } catch (Stop s) {
            reason = count[0] < maxNew ? "stop" : "length";
        }
        String rest = dec.flush();
        if (!rest.isEmpty()) sink.text(rest);
        return new Result(reason, prompt.length, count[0]);
    }

    /** The loaded model of that folder, loading it (and evicting the least recently used) if needed. */
    private synchronized Gpt2 model(Path dir) {
        Gpt2 m = models.get(dir);
        if (m != null) return m;
        try {
            m = loader.apply(dir);
        } catch (RuntimeException e) {
            throw new NoModel("cannot load " + dir.getFileName() + ": " + e.getMessage());
        }
        models.put(dir, m);
        while (models.size() > maxModels) {
            Map.Entry<Path, Gpt2> eldest = models.entrySet().iterator().next();
            models.remove(eldest.getKey());
            eldest.getValue().close();
        }
        return m;
    }

    @Override
    public synchronized void close() {
        worker.shutdownNow();
        for (Gpt2 m : models.values()) m.close();
        models.clear();
    }
}
