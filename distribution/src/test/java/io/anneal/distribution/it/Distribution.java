package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * The harness of the end-to-end suites: the distribution that {@code mvn package} assembled (or a
 * copy of it that a test may change), and {@code bin/anneal} run in it as a user runs it, with a
 * working folder, environment, a wrapper (a file-size limit, another mount namespace), standard
 * input and a time limit; its output (stdout and stderr together, in order) and exit code come back
 * as a {@link Result}.
 */
final class Distribution {
    /** The limit of a command that sets none: far above any command of the suites, so a hang fails instead of blocking the build. */
    static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);

    /** The root of the tree: bin/anneal, lib/, plugins/, conf/, examples/. */
    final Path home;

    private Distribution(Path home) {
        this.home = home;
    }

    /**
     * The tree assembled by {@code mvn package} ({@code anneal.dist}, set by the end-to-end execution
     * only); a suite started elsewhere (the unit-test execution reached by -Dtest) is skipped, not failed.
     */
    static Distribution assembled() {
        String dist = System.getProperty("anneal.dist");
        Assumptions.assumeTrue(dist != null, "needs the assembled distribution (the end-to-end execution sets anneal.dist)");
        return new Distribution(Path.of(dist));
    }

    /** A copy of the assembled tree at {@code dir}/anneal, for a suite that adds or removes plugins or writes into it. */
    static Distribution copyOfAssembled(Path dir) throws IOException {
        Distribution assembled = assembled();
        Path home = dir.resolve("anneal");
        copyTree(assembled.home, home);
        return new Distribution(home);
    }

    /** Copies a file tree, keeping file attributes (bin/anneal stays executable). */
    static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> files = Files.walk(from)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Path target = to.resolve(from.relativize(f).toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(f, target, StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
        }
    }

    /** Deletes a file tree, if there is one. */
    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> files = Files.walk(root)) {
            for (Path f : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(f);
            }
        }
    }

    /** Drops a plugin (a jar, or a folder of a plugin jar and its own jars) into plugins/, as a user installs one. */
    Path addPlugin(Path jarOrFolder) throws IOException {
        Path target = home.resolve("plugins").resolve(jarOrFolder.getFileName().toString());
        if (Files.isDirectory(jarOrFolder)) {
            copyTree(jarOrFolder, target);
        } else {
            Files.copy(jarOrFolder, target);
        }
        return target;
    }

    Path resolve(String path) {
        return home.resolve(path);
    }

    /** {@code bin/anneal args...}, run in the distribution's root unless {@link Command#in} says otherwise. */
    Command command(String... args) {
        return new Command(home.resolve("bin/anneal"), List.of(args), home);
    }

    /** {@code bin/anneal args...} in the distribution's root, to its end. */
    Result run(String... args) throws Exception {
        return command(args).run();
    }

    /**
     * {@code bin/anneal run examples/tiny-sft.conf} shortened by --set to 6 steps of 1,024 tokens, a
     * checkpoint every 2 (keep-last 2: steps 4 and 6 stay) and no evaluation, into {@code runDir}, run
     * in the folder above it; {@code extra} follow (--resume, more --set). 6 steps take seconds alone,
     * so 3 minutes means a hang.
     */
    Command shortTinyRun(Path runDir, String... extra) {
        List<String> args = new ArrayList<>(List.of("run", tinyExample(),
                "--set", "pipeline.run-dir=\"" + runDir + "\"", "--set", "stages[0].batch-tokens=\"1024\"",
                "--set", "stages[0].token-budget=\"6144\"", "--set", "stages[0].checkpoint-every=\"2048\"",
                "--set", "stages[0].eval-every=\"0\""));
        args.addAll(List.of(extra));
        return command(args.toArray(String[]::new)).in(runDir.getParent()).timeout(Duration.ofMinutes(3));
    }

    /** The absolute path of examples/tiny-sft.conf, as the runs name it in their messages. */
    String tinyExample() {
        return home.resolve("examples/tiny-sft.conf").toString();
    }

    /** Sends {@code signal} (INT, TERM, KILL) with kill(1); unlike Process.destroy it leaves the output pipe open. */
    static void signal(String signal, long pid) throws Exception {
        new ProcessBuilder("kill", "-" + signal, Long.toString(pid)).inheritIO().start().waitFor();
    }

    /** What a command did: its exit code and its output, stdout and stderr together. */
    record Result(int exit, String out) {
        /** The last 4 lines of the output: where a failed run says why. */
        String tail() {
            List<String> lines = out.lines().toList();
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 4), lines.size()));
        }
    }

    /** One bin/anneal command line and how it runs. */
    static final class Command {
        private final List<String> command;
        private Path directory;
        private final Map<String, String> environment = new LinkedHashMap<>();
        private final Set<String> unset = new LinkedHashSet<>();
        private final List<String> wrapper = new ArrayList<>();
        private Duration timeout = DEFAULT_TIMEOUT;
        private String input;

        private Command(Path bin, List<String> args, Path directory) {
            this.command = new ArrayList<>(List.of(bin.toString()));
            this.command.addAll(args);
            this.directory = directory;
        }

        /** The working folder (relative paths of the command line resolve against it). */
        Command in(Path folder) {
            this.directory = folder;
            return this;
        }

        Command env(String name, String value) {
            environment.put(name, value);
            unset.remove(name);
            return this;
        }

        /** Leaves {@code name} out of the environment this build passes on. */
        Command withoutEnv(String name) {
            environment.remove(name);
            unset.add(name);
            return this;
        }

        /**
         * Runs bin/anneal under another program that ends by exec'ing its arguments (nsenter ... --, say);
         * every wrapper of a command goes this way, the outermost first.
         */
        Command within(String... program) {
            wrapper.addAll(List.of(program));
            return this;
        }

        /** The kernel's file-size limit (ulimit -f, in KiB): a write past it fails with EFBIG ("File too large"). */
        Command fileSizeLimit(long kib) {
            return within("bash", "-c", "ulimit -f " + kib + " && exec \"$@\"", "bash");
        }

        Command timeout(Duration limit) {
            this.timeout = limit;
            return this;
        }

        /** Text on standard input, then its end; without it standard input is empty (/dev/null). */
        Command input(String text) {
            this.input = text;
            return this;
        }

        /** The process as configured, output and errors merged; for a test that reads or redirects the output itself. */
        ProcessBuilder processBuilder() {
            List<String> line = new ArrayList<>(wrapper);
            line.addAll(command);
            ProcessBuilder builder = new ProcessBuilder(line).directory(directory.toFile()).redirectErrorStream(true);
            builder.environment().putAll(environment);
            unset.forEach(builder.environment()::remove);
            if (input == null) {
                builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            }
            return builder;
        }

        Process start() throws IOException {
            Process p = processBuilder().start();
            if (input != null) {
                try (OutputStream in = p.getOutputStream()) {
                    in.write(input.getBytes(StandardCharsets.UTF_8));
                }
            }
            return p;
        }

        /** Runs the command to its end; past the time limit it is killed and the test fails with what it printed. */
        Result run() throws Exception {
            Process p = start();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            Thread reader = new Thread(() -> {
                try (InputStream s = p.getInputStream()) {
                    s.transferTo(out);
                } catch (IOException ignored) {
                    // the process was killed; what was read is kept
                }
            }, "anneal-output");
            reader.start();
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
                reader.join(10_000);
                fail(String.join(" ", command) + " did not end within " + timeout.toSeconds() + " s; its output:\n"
                        + out.toString(StandardCharsets.UTF_8));
            }
            reader.join(60_000); // the output's end: a process that bin/anneal started and left running could hold it open
            return new Result(p.exitValue(), out.toString(StandardCharsets.UTF_8));
        }
    }
}
