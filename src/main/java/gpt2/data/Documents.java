package gpt2.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Scanner;
import java.util.regex.Pattern;

/**
 * Documents read one at a time from local files, in file order then row order:
 * parquet (a text column, read in-process by DuckDB), JSONL (a text field per line), or plain
 * text split on a separator. Empty documents are skipped.
 */
public final class Documents implements Iterator<String>, AutoCloseable {

    public enum Format { PARQUET, JSONL, TEXT }

    /** A source file's format from its name: .parquet, .jsonl/.json/.ndjson, anything else text. */
    public static Format formatOf(Path file) {
        String n = file.getFileName().toString().toLowerCase();
        if (n.endsWith(".parquet")) return Format.PARQUET;
        if (n.endsWith(".jsonl") || n.endsWith(".json") || n.endsWith(".ndjson")) return Format.JSONL;
        return Format.TEXT;
    }

    private final List<Path> files;
    private final String column;
    private final String separator;
    private int fileIndex = -1;
    private Iterator<String> currentIt;
    private AutoCloseable currentRes;
    private String next;

    public Documents(List<Path> files, String column, String separator) {
        this(files, column, separator, null);
    }

    /** With {@code beforeOpen}: called with a file's index before it is opened (to wait for a download). */
    public Documents(List<Path> files, String column, String separator, java.util.function.IntConsumer beforeOpen) {
        this.files = List.copyOf(files);
        this.column = column;
        this.separator = separator;
        this.beforeOpen = beforeOpen;
    }

    private final java.util.function.IntConsumer beforeOpen;

    /** Rows in the parquet files (from their metadata), or -1 when any input is not parquet. */
    public static long countParquetRows(List<Path> files) {
        long total = 0;
        for (Path f : files) {
            if (formatOf(f) != Format.PARQUET) return -1;
            try (Connection c = duckdb(); Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("SELECT count(*) FROM read_parquet('" + sqlString(f) + "')")) {
                rs.next();
                total += rs.getLong(1);
            } catch (SQLException e) {
                throw new IllegalArgumentException(f + ": cannot read parquet: " + firstLine(e.getMessage()));
            }
        }
        return total;
    }

    @Override
    public boolean hasNext() {
        while (next == null) {
            if (currentIt != null && currentIt.hasNext()) {
                String d = currentIt.next();
                if (d != null && !d.isEmpty()) next = d;
                continue;
            }
            closeCurrent();
            if (++fileIndex >= files.size()) return false;
            if (beforeOpen != null) beforeOpen.accept(fileIndex);
            openFile(files.get(fileIndex));
        }
        return true;
    }

    @Override
    public String next() {
        if (!hasNext()) throw new NoSuchElementException();
        String d = next;
        next = null;
        return d;
    }

    private void openFile(Path f) {
        if (!Files.isRegularFile(f)) throw new IllegalArgumentException(f + ": no such file");
        try {
            switch (formatOf(f)) {
                case PARQUET -> openParquet(f);
                case JSONL -> openJsonl(f);
                case TEXT -> {
                    Scanner sc = new Scanner(f, StandardCharsets.UTF_8).useDelimiter(Pattern.quote(separator));
                    currentRes = sc;
                    currentIt = sc;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        }
    }

    private void openParquet(Path f) {
        try {
            Connection c = duckdb();
            Statement st = c.createStatement();
            ResultSet rs = st.executeQuery("SELECT \"" + column.replace("\"", "\"\"") + "\" FROM read_parquet('"
                    + sqlString(f) + "')");
            currentRes = () -> {
                rs.close();
                st.close();
                c.close();
            };
            currentIt = new Iterator<>() {
                Boolean has;

                @Override
                public boolean hasNext() {
                    try {
                        if (has == null) has = rs.next();
                        return has;
                    } catch (SQLException e) {
                        throw new IllegalArgumentException(f + ": reading parquet failed: " + firstLine(e.getMessage()));
                    }
                }

                @Override
                public String next() {
                    if (!hasNext()) throw new NoSuchElementException();
                    has = null;
                    try {
                        return rs.getString(1);
                    } catch (SQLException e) {
                        throw new IllegalArgumentException(f + ": reading parquet failed: " + firstLine(e.getMessage()));
                    }
                }
            };
        } catch (SQLException e) {
            throw new IllegalArgumentException(f + ": cannot read column '" + column + "' of parquet: "
                    + firstLine(e.getMessage()));
        }
    }

    private void openJsonl(Path f) throws IOException {
        BufferedReader r = Files.newBufferedReader(f, StandardCharsets.UTF_8);
        ObjectMapper json = new ObjectMapper();
        currentRes = r;
        currentIt = new Iterator<>() {
            String line;
            long number;

            @Override
            public boolean hasNext() {
                try {
                    while (line == null) {
                        String l = r.readLine();
                        if (l == null) return false;
                        number++;
                        if (!l.isBlank()) line = l;
                    }
                    return true;
                } catch (IOException e) {
                    throw new UncheckedIOException(f + ": " + e.getMessage(), e);
                }
            }

            @Override
            public String next() {
                if (!hasNext()) throw new NoSuchElementException();
                String l = line;
                line = null;
                try {
                    JsonNode n = json.readTree(l).get(column);
                    if (n == null || !n.isTextual()) {
                        throw new IllegalArgumentException(f + ": line " + number + " has no text field '" + column + "'");
                    }
                    return n.asText();
                } catch (IOException e) {
                    throw new IllegalArgumentException(f + ": line " + number + " is not valid JSON: "
                            + firstLine(e.getMessage()));
                }
            }
        };
    }

    private void closeCurrent() {
        if (currentRes != null) {
            try {
                currentRes.close();
            } catch (Exception ignored) {
                // reading is done; nothing to save
            }
        }
        currentRes = null;
        currentIt = null;
    }

    @Override
    public void close() {
        closeCurrent();
    }

    private static Connection duckdb() throws SQLException {
        try {
            Class.forName("org.duckdb.DuckDBDriver");
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("the DuckDB JDBC driver is not on the class path (needed for parquet)");
        }
        return DriverManager.getConnection("jdbc:duckdb:");
    }

    private static String sqlString(Path f) {
        return f.toAbsolutePath().toString().replace("'", "''");
    }

    private static String firstLine(String s) {
        if (s == null) return "unknown error";
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }
}
