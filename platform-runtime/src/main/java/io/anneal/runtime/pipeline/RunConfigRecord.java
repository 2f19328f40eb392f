package io.anneal.runtime.pipeline;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigRenderOptions;
import com.typesafe.config.ConfigValue;
import io.anneal.api.InputException;
import io.anneal.runtime.train.RunFailedException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * {@code <run-dir>/pipeline.json}: every resolved value of the pipeline a run started with, flat
 * ({@code stages.0.schedule.peak-lr}). A {@code --resume} whose values differ is refused, naming
 * each key with its old and new value, unless the key is one that only says where and how fast the
 * same training runs ({@link #ENVIRONMENT}) or the user accepted it with {@code --allow-change KEY}
 * (a key, or a block: {@code --allow-change stages.0.schedule}). A resume that changed nothing
 * silently continues what was trained; one that changed the model, the data, the seed or the
 * learning rate without saying so would not (issue 15).
 */
public final class RunConfigRecord {
    static final String FILE = "pipeline.json";
    /**
     * Keys that choose where and how the same arithmetic runs (and where its metrics go): free to
     * change across a resume, with everything under them.
     */
    static final Set<String> ENVIRONMENT = Set.of("pipeline.threads", "pipeline.device", "pipeline.run-dir",
            "model.kernels", "model.layers", "model.ssd-recompute", "model.branch-stream", "model.keep-weight-casts",
            "pipeline.metrics");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private RunConfigRecord() {
    }

    /** The pipeline's values, flat and in order; list items by index ({@code stages.0.name}). */
    static Map<String, String> flatten(Config resolved) {
        Map<String, String> flat = new TreeMap<>();
        flatten("", resolved.root(), flat);
        return flat;
    }

    private static void flatten(String path, ConfigValue value, Map<String, String> flat) {
        if (value instanceof ConfigObject object) {
            object.forEach((key, child) -> flatten(path.isEmpty() ? key : path + "." + key, child, flat));
        } else if (value instanceof ConfigList list) {
            for (int i = 0; i < list.size(); i++) {
                flatten(path + "." + i, list.get(i), flat);
            }
        } else {
            flat.put(path, value.render(ConfigRenderOptions.concise()));
        }
    }

    /**
     * On a fresh run, records the pipeline; on a resume, refuses a changed one (unless allowed) and
     * then records what the run continues with.
     */
    static void check(Path runDir, Config resolved, boolean resume, List<String> allowed) throws IOException {
        Path file = runDir.resolve(FILE);
        Map<String, String> now = flatten(resolved);
        if (!resume && hasCheckpoints(runDir)) {
            return; // the stage refuses a fresh run over an earlier run's checkpoints: keep that run's record
        }
        if (resume && Files.isRegularFile(file)) {
            Map<String, String> before;
            try {
                before = JSON.readValue(file.toFile(), new TypeReference<TreeMap<String, String>>() { });
            } catch (IOException e) {
                throw new InputException(file + ": not the JSON record of a run's pipeline (" + e.getMessage()
                        + "); remove it to resume without the check");
            }
            List<String> changed = changes(before, now, allowed);
            if (!changed.isEmpty()) {
                throw new InputException("--resume: the pipeline differs from the one this run started with ("
                        + file + "): " + String.join("; ", changed) + ". Resume with the same values, or accept "
                        + "each change with --allow-change KEY");
            }
        }
        Files.createDirectories(runDir);
        Path temp = runDir.resolve(FILE + ".tmp");
        try {
            JSON.writeValue(temp.toFile(), now);
            Files.move(temp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            // a full disk, say: before any step, so nothing of this run is lost; no temporary file is left behind
            try {
                Files.deleteIfExists(temp);
            } catch (IOException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw new RunFailedException("cannot write " + file + " (" + RunFailedException.reason(e) + "); the run has not started: "
                    + "free space (or fix the error) and run again" + (resume ? " with --resume" : ""), e);
        }
    }

    private static boolean hasCheckpoints(Path runDir) throws IOException {
        if (!Files.isDirectory(runDir)) {
            return false;
        }
        try (var stages = Files.list(runDir)) {
            for (Path stage : (Iterable<Path>) stages::iterator) {
                Path checkpoints = stage.resolve("checkpoints");
                if (Files.isDirectory(checkpoints)) {
                    try (var entries = Files.list(checkpoints)) {
                        if (entries.anyMatch(e -> e.getFileName().toString().startsWith("step-"))) {
                            return true;
                        }
                    }
                }
            }
        }
        return false;
    }

    /** Each differing key as {@code key: old -> new}, leaving out the environment and the allowed ones. */
    static List<String> changes(Map<String, String> before, Map<String, String> now, List<String> allowed) {
        List<String> out = new ArrayList<>();
        Set<String> keys = new TreeSet<>(before.keySet());
        keys.addAll(now.keySet());
        for (String key : keys) {
            String a = before.get(key);
            String b = now.get(key);
            if (java.util.Objects.equals(a, b) || ENVIRONMENT.contains(key) || ENVIRONMENT.stream().anyMatch(e -> key.startsWith(e + ".")) || isAllowed(key, allowed)) {
                continue;
            }
            out.add(key + ": " + (a == null ? "(absent)" : a) + " -> " + (b == null ? "(absent)" : b));
        }
        return out;
    }

    private static boolean isAllowed(String key, List<String> allowed) {
        for (String a : allowed) {
            String prefix = a.replaceAll("\\[(\\d+)]", ".$1");
            if (key.equals(prefix) || key.startsWith(prefix + ".")) {
                return true;
            }
        }
        return false;
    }
}
