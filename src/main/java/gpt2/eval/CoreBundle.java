package gpt2.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * The DCLM eval bundle as nanochat uses it: {@code core.yaml} (the tasks: label, dataset_uri,
 * num_fewshot, icl_task_type, continuation_delimiter), {@code eval_meta_data.csv} (each task's
 * random baseline, in percent) and {@code eval_data/URI} (a JSONL file per task), read from a
 * folder or straight from the zip, with or without the top folder {@code eval_bundle/}. Every
 * problem (a file the task list names but the bundle lacks, a row missing a field its task type
 * needs, a gold index out of range, a task without a baseline) is collected and reported together,
 * by file and line, before anything is scored.
 */
public final class CoreBundle {
    /** Where {@code gpt2 prepare core} puts it and {@code gpt2 eval} looks first. */
    public static final Path DEFAULT = Path.of("data", "eval_bundle");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static final int MAX_PROBLEMS = 20;

    private CoreBundle() {
    }

    /** Reads files of a bundle by their path inside it ("core.yaml", "eval_data/x.jsonl"). */
    private interface Files2 extends AutoCloseable {
        /** The bytes, or null when absent. */
        byte[] read(String path) throws IOException;

        String where(String path);

        @Override
        void close() throws IOException;
    }

    /**
     * The bundle to read: {@code given} when there is one, else data/eval_bundle, else
     * data/eval_bundle.zip; an error saying where it looked when there is none.
     */
    public static Path locate(Path given, String flag) {
        if (given != null) {
            if (!Files.exists(given)) throw new IllegalArgumentException(flag + " " + given + ": no such folder or zip (get the bundle with: gpt2 prepare core)");
            return given;
        }
        if (Files.exists(DEFAULT)) return DEFAULT;
        Path zip = Path.of(DEFAULT + ".zip");
        if (Files.exists(zip)) return zip;
        throw new IllegalArgumentException("no eval bundle: looked at " + DEFAULT + " and " + zip
                + "; get it with 'gpt2 prepare core' (or give " + flag + " DIR_OR_ZIP)");
    }

    /** The bundle's tasks, every row checked. */
    public static List<Core.Task> load(Path bundle) {
        try (Files2 f = open(bundle)) {
            return load(f);
        } catch (IOException e) {
            throw new IllegalArgumentException(bundle + ": cannot read (" + e.getMessage() + ")");
        }
    }

    private static Files2 open(Path bundle) throws IOException {
        if (Files.isDirectory(bundle)) {
            Path root = Files.isRegularFile(bundle.resolve("core.yaml")) ? bundle : bundle.resolve("eval_bundle");
            return new Files2() {
                public byte[] read(String p) throws IOException {
                    Path f = root.resolve(p).normalize();
                    return f.startsWith(root) && Files.isRegularFile(f) ? Files.readAllBytes(f) : null;
                }

                public String where(String p) {
                    return root.resolve(p).toString();
                }

                public void close() {
                }
            };
        }
        if (!Files.isRegularFile(bundle)) {
            throw new IllegalArgumentException(bundle + ": no such folder or zip (get the bundle with: gpt2 prepare core)");
        }
        ZipFile zip;
        try {
            zip = new ZipFile(bundle.toFile());
        } catch (java.util.zip.ZipException e) {
            throw new IllegalArgumentException(bundle + ": not a zip archive (" + e.getMessage() + ")");
        }
        String prefix = zip.getEntry("core.yaml") != null ? "" : "eval_bundle/";
        return new Files2() {
            public byte[] read(String p) throws IOException {
                ZipEntry e = zip.getEntry(prefix + p);
                if (e == null || e.isDirectory()) return null;
                try (InputStream in = zip.getInputStream(e)) {
                    return in.readAllBytes();
                }
            }

            public String where(String p) {
                return bundle + "!/" + prefix + p;
            }

            public void close() throws IOException {
                zip.close();
            }
        };
    }

    private static List<Core.Task> load(Files2 f) throws IOException {
        byte[] yaml = f.read("core.yaml");
        if (yaml == null) throw new IllegalArgumentException(f.where("core.yaml") + ": missing (not a CORE eval bundle?)");
        byte[] csv = f.read("eval_meta_data.csv");
        if (csv == null) throw new IllegalArgumentException(f.where("eval_meta_data.csv") + ": missing (the tasks' random baselines)");
        JsonNode config;
        try {
            config = YAML.readTree(yaml);
        } catch (IOException e) {
            throw new IllegalArgumentException(f.where("core.yaml") + ": not YAML (" + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        JsonNode tasks = config.path("icl_tasks");
        if (!tasks.isArray() || tasks.isEmpty()) throw new IllegalArgumentException(f.where("core.yaml") + ": no icl_tasks list");
        Map<String, Double> baselines = baselines(new String(csv, StandardCharsets.UTF_8), f.where("eval_meta_data.csv"));
        List<String> problems = new ArrayList<>();
        List<Core.Task> out = new ArrayList<>();
        int n = 0;
        for (JsonNode t : tasks) {
            n++;
            String label = t.path("label").asText(null), uri = t.path("dataset_uri").asText(null);
            Core.Type type = Core.Type.of(t.path("icl_task_type").asText(""));
            JsonNode shotsNode = t.path("num_fewshot");
            int shots = shotsNode.isArray() && !shotsNode.isEmpty() ? shotsNode.get(0).asInt(-1) : shotsNode.asInt(-1);
            String delim = t.has("continuation_delimiter") ? t.get("continuation_delimiter").asText() : " ";
            String where = f.where("core.yaml") + ": task " + n + (label != null ? " (" + label + ")" : "");
            if (label == null || uri == null) {
                problems.add(where + ": needs a label and a dataset_uri");
                continue;
            }
            if (type == null) {
                problems.add(where + ": icl_task_type '" + t.path("icl_task_type").asText("") + "' is not multiple_choice, schema or "
                        + "language_modeling");
                continue;
            }
            if (shots < 0) {
                problems.add(where + ": num_fewshot must be a number (or a list of them) >= 0");
                continue;
            }
            Double baseline = baselines.get(label);
            if (baseline == null) problems.add(f.where("eval_meta_data.csv") + ": no random baseline for task " + label);
            byte[] data = f.read("eval_data/" + uri);
            if (data == null) {
                problems.add(f.where("eval_data/" + uri) + ": missing (task " + label + ")");
                continue;
            }
            List<JsonNode> rows = rows(new String(data, StandardCharsets.UTF_8), type, f.where("eval_data/" + uri), problems);
            if (rows.size() <= shots) problems.add(f.where("eval_data/" + uri) + ": " + rows.size() + " examples, too few for "
                    + shots + "-shot");
            out.add(new Core.Task(label, type, shots, delim, baseline == null ? 0 : baseline, uri, rows));
        }
        if (!problems.isEmpty()) {
            int more = problems.size() - MAX_PROBLEMS;
            throw new IllegalArgumentException(problems.size() + " problem(s) in the eval bundle, nothing scored:\n  "
                    + String.join("\n  ", problems.subList(0, Math.min(MAX_PROBLEMS, problems.size())))
                    + (more > 0 ? "\n  ... and " + more + " more" : ""));
        }
        return out;
    }

    /** A task file's rows, each checked for the fields its type needs; problems named by file and line. */
    private static List<JsonNode> rows(String text, Core.Type type, String where, List<String> problems) {
        List<JsonNode> out = new ArrayList<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty()) continue;
            String problem;
            JsonNode n = null;
            try {
                n = JSON.readTree(line);
                problem = problem(n, type);
            } catch (IOException e) {
                problem = "not JSON";
            }
            if (problem != null) {
                if (problems.size() < 10 * MAX_PROBLEMS) problems.add(where + ":" + (i + 1) + ": " + problem);
                continue;
            }
            out.add(n);
        }
        return out;
    }

    /** What a row lacks for its task type, or null. */
    static String problem(JsonNode n, Core.Type type) {
        if (n == null || !n.isObject()) return "not a JSON object";
        switch (type) {
            case MULTIPLE_CHOICE -> {
                if (!n.path("query").isTextual()) return "multiple_choice needs a \"query\" string";
                return options(n, "choices");
            }
            case SCHEMA -> {
                if (!n.path("continuation").isTextual()) return "schema needs a \"continuation\" string";
                return options(n, "context_options");
            }
            case LANGUAGE_MODELING -> {
                if (!n.path("context").isTextual() || !n.path("continuation").isTextual()) {
                    return "language_modeling needs \"context\" and \"continuation\" strings";
                }
                return null;
            }
        }
        return null;
    }

    private static String options(JsonNode n, String field) {
        JsonNode o = n.path(field);
        if (!o.isArray() || o.size() < 2) return "\"" + field + "\" must be a list of at least 2 strings";
        for (JsonNode x : o) if (!x.isTextual()) return "\"" + field + "\" must hold strings only";
        JsonNode gold = n.path("gold");
        if (!gold.isIntegralNumber() || gold.asInt() < 0 || gold.asInt() >= o.size()) {
            return "\"gold\" must be an index into \"" + field + "\" (0.." + (o.size() - 1) + "), got " + gold;
        }
        return null;
    }

    /** "Eval Task" -> "Random baseline" (percent) from the metadata CSV (RFC 4180 quoting). */
    static Map<String, Double> baselines(String csv, String where) {
        List<List<String>> rows = parseCsv(csv);
        if (rows.isEmpty()) throw new IllegalArgumentException(where + ": empty");
        List<String> header = rows.getFirst();
        int task = header.indexOf("Eval Task"), base = header.indexOf("Random baseline");
        if (task < 0 || base < 0) throw new IllegalArgumentException(where + ": needs the columns \"Eval Task\" and \"Random baseline\"");
        Map<String, Double> out = new HashMap<>();
        for (int i = 1; i < rows.size(); i++) {
            List<String> r = rows.get(i);
            if (r.size() <= Math.max(task, base) || r.get(task).isBlank()) continue;
            try {
                out.put(r.get(task).strip(), Double.parseDouble(r.get(base).strip()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(where + ": row " + (i + 1) + ": random baseline '" + r.get(base) + "' is not a number");
            }
        }
        return out;
    }

    static List<List<String>> parseCsv(String s) {
        List<List<String>> rows = new ArrayList<>();
        List<String> row = new ArrayList<>();
        StringBuilder field = new StringBuilder();
        boolean quoted = false, any = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quoted) {
                if (c == '"' && i + 1 < s.length() && s.charAt(i + 1) == '"') {
                    field.append('"');
                    i++;
                } else if (c == '"') {
                    quoted = false;
                } else {
                    field.append(c);
                }
            } else if (c == '"') {
                quoted = true;
                any = true;
            } else if (c == ',') {
                row.add(field.toString());
                field.setLength(0);
                any = true;
            } else if (c == '\n' || c == '\r') {
                if (c == '\r' && i + 1 < s.length() && s.charAt(i + 1) == '\n') i++;
                if (any || field.length() > 0) {
                    row.add(field.toString());
                    rows.add(row);
                }
                row = new ArrayList<>();
                field.setLength(0);
                any = false;
            } else {
                field.append(c);
                any = true;
            }
        }
        if (any || field.length() > 0) {
            row.add(field.toString());
            rows.add(row);
        }
        return rows;
    }
}
