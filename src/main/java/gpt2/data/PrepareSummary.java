package gpt2.data;

import java.util.List;

/** What a preparation did, for the summary line; {@code note}: something the user should know, or null. */
public record PrepareSummary(String dataset, long documents, long tokens, List<String> files, int skippedShards,
                             double seconds, String note) {

    public PrepareSummary(String dataset, long documents, long tokens, List<String> files, int skippedShards, double seconds) {
        this(dataset, documents, tokens, files, skippedShards, seconds, null);
    }

    public String line() {
        String rate = skippedShards == 0 && seconds > 0 && tokens > 0
                ? String.format(" (%,.0f tokens/s)", tokens / seconds) : "";
        return String.format("%s: %,d documents, %,d tokens, %d file%s%s in %.1f s%s", dataset,
                documents, tokens, files.size(), files.size() == 1 ? "" : "s",
                skippedShards > 0 ? " (" + skippedShards + " already complete, skipped)" : "", seconds, rate);
    }
}
