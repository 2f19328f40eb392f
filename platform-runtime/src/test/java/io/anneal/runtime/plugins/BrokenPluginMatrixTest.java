package io.anneal.runtime.plugins;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The broken-plugin matrix (issue 15): every fixture below is built into one plugin folder beside a
 * good plugin, and loading the folder must refuse each broken one in one line holding its verdict,
 * load the good one, and neither end nor hang the host. JDK limits (ExitGuard): no SecurityManager is
 * installed (JDK 17 would print its deprecation warning on every run; later JDKs refuse or lack it),
 * so an exit call is found by reading the plugin jar's classes before any of its code runs; an exit
 * reached another way while the plugin initialises ends the process with exit 2 and one line naming
 * the plugin. A thread the plugin leaves running is not stopped; its uncaught failure is one line.
 */
class BrokenPluginMatrixTest {
    @TempDir
    Path tmp;

    /** A broken fixture: the file it is, how it is built, and the verdict its one-line refusal must hold. */
    record Fixture(String file, Builder build, String verdict) {
    }

    @FunctionalInterface
    interface Builder {
        void into(Path file) throws Exception;
    }

    /** A modular plugin with the members of {@code body} replacing the defaults of FixtureJars.pluginSource where named. */
    static Builder plugin(String pkg, String id, String range, String body) {
        return file -> FixtureJars.plugin(file, pkg, id, range, body);
    }

    /** A modular plugin whose class is written whole ({@code source}), with resources. */
    static Builder raw(String pkg, String source, Map<String, String> resources) {
        return file -> FixtureJars.build(file, Map.of("module-info.java", "module fx." + pkg + " {\n requires io.anneal.api;\n"
                + " provides io.anneal.api.plugin.Plugin with " + pkg + ".P;\n}\n", pkg + "/P.java", source), resources, null);
    }

    static String pluginClass(String pkg, String id, String version, String range, String body) {
        return "package " + pkg + ";\nimport io.anneal.api.plugin.*;\nimport io.anneal.api.extension.*;\nimport java.util.List;\n"
                + "public class P implements Plugin {\n  public String id() { return " + id + "; }\n"
                + "  public String version() { return " + version + "; }\n  public VersionRange apiRange() { return " + range + "; }\n"
                + body + "\n}\n";
    }

    static final String RANGE = "VersionRange.parse(\"[1.0,2.0)\")";

    static List<Fixture> matrix() {
        List<Fixture> m = new ArrayList<>();
        m.add(new Fixture("notes.txt", f -> Files.writeString(f, "hello"), "notes.txt is not a jar"));
        m.add(new Fixture("garbage.jar", f -> Files.writeString(f, "this is not a zip file"), "garbage.jar is not a readable jar"));
        m.add(new Fixture("no-provider.jar", f -> FixtureJars.build(f, Map.of("noprov/A.java", "package noprov; public class A {}"),
                Map.of(), null), "no io.anneal.api.plugin.Plugin provider found"));
        m.add(new Fixture("missing-provider.jar", f -> FixtureJars.build(f, Map.of("missing/A.java",
                "package missing; public class A {}"), Map.of("META-INF/services/io.anneal.api.plugin.Plugin", "missing.Gone\n"), null),
                "missing.Gone"));
        m.add(new Fixture("ctor-throws.jar", plugin("ctorthrows", "ctor-throws", "[1.0,2.0)",
                "public P() { throw new IllegalStateException(\"no config\"); }"), "ctorthrows.P failed to initialise: "));
        m.add(new Fixture("extensions-throw.jar", plugin("extthrow", "extensions-throw", "[1.0,2.0)",
                "public List<ExtensionFactory<?>> extensions() { throw new UnsupportedOperationException(\"boom\"); }"),
                "failed to initialise: UnsupportedOperationException: boom"));
        m.add(new Fixture("future-api.jar", plugin("future", "future-api", "[2.0,3.0)", ""),
                "built for API [2.0,3.0), but this runtime implements API"));
        m.add(new Fixture("null-id.jar", raw("nullid", pluginClass("nullid", "null", "\"1\"", RANGE, ""), Map.of()),
                "nullid.P failed to initialise: NullPointerException: id() returned null"));
        m.add(new Fixture("bad-id.jar", plugin("badid", "Bad_ID", "[1.0,2.0)", ""), "its id must be lower-case letters, digits and dashes"));
        m.add(new Fixture("null-version.jar", raw("nullversion", pluginClass("nullversion", "\"null-version\"", "null", RANGE, ""),
                Map.of()), "failed to initialise: NullPointerException: version() returned null"));
        m.add(new Fixture("null-range.jar", raw("nullrange", pluginClass("nullrange", "\"null-range\"", "\"1\"", "null", ""), Map.of()),
                "nullrange.P failed to initialise: NullPointerException: apiRange() returned null"));
        m.add(new Fixture("null-extensions.jar", plugin("nullext", "null-extensions", "[1.0,2.0)",
                "public List<ExtensionFactory<?>> extensions() { return null; }"), "failed to initialise: NullPointerException"));
        m.add(new Fixture("recursing-extensions.jar", plugin("recurse", "recursing-extensions", "[1.0,2.0)",
                "public List<ExtensionFactory<?>> extensions() { return extensions(); }"), "failed to initialise: StackOverflowError"));
        m.add(new Fixture("bad-reference-conf.jar", raw("badconf", pluginClass("badconf", "\"bad-reference-conf\"", "\"1\"", RANGE, ""),
                Map.of("reference.conf", "a = {\n")), "failed to initialise: Parse: default of plugin bad-reference-conf: 2:"));
        m.add(new Fixture("exit-in-constructor.jar", plugin("exiter", "exiter", "[1.0,2.0)", "public P() { System.exit(3); }"),
                "exiter.P is refused before it runs: exiter/P.class calls java.lang.System.exit; a plugin must never end the process"));
        m.add(new Fixture("halt-in-id.jar", raw("halter", pluginClass("halter", "halt()", "\"1\"", RANGE,
                "  static String halt() { Runtime.getRuntime().halt(4); return \"halter\"; }"), Map.of()),
                "halter.P is refused before it runs: halter/P.class calls java.lang.Runtime.halt; a plugin must never end the process"));
        m.add(new Fixture("hangs-at-start.jar", plugin("hang", "hangs", "[1.0,2.0)",
                "public P() { while (true) { try { Thread.sleep(1000); } catch (InterruptedException e) { } } }"),
                "hang.P did not finish initialising within 2.0 s (stuck at fx.hang/hang.P.<init>(P.java:"));
        m.add(new Fixture("b-twin.jar", plugin("twinb", "twin", "[1.0,2.0)", ""), "a plugin with the same id is already loaded from"));
        return m;
    }

    @Test
    void everyBrokenPluginIsRefusedInOneLineWithItsVerdictAndTheGoodOnesLoad() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("plugins"));
        List<Fixture> matrix = matrix();
        assertTrue(matrix.size() >= 15, "the issue asks for at least 15 broken fixtures");
        for (Fixture f : matrix) {
            f.build().into(dir.resolve(f.file()));
        }
        FixtureJars.plugin(dir.resolve("a-twin.jar"), "twina", "twin", "[1.0,2.0)", "");
        FixtureJars.plugin(dir.resolve("good.jar"), "good", "good", "[1.0,2.0)", "");
        // a plugin that starts a thread which throws: it loads, and the failure is one line on stderr
        FixtureJars.plugin(dir.resolve("thread-throws.jar"), "threadboom", "thread-throws", "[1.0,2.0)",
                "public P() { Thread t = new Thread(() -> { throw new IllegalStateException(\"background boom\"); }, \"fx-worker\");"
                        + " t.start(); try { t.join(); } catch (InterruptedException e) { } }");

        PluginRegistry registry = new PluginRegistry();
        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        long start = System.nanoTime();
        try {
            System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
            new PluginLoader(registry).withInitTimeout(2_000).loadFolder(dir, "test", true);
        } finally {
            System.setErr(err);
        }
        double seconds = (System.nanoTime() - start) / 1e9;

        Map<String, String> bySource = new LinkedHashMap<>();
        for (PluginRefusal r : registry.refusals()) {
            String name = r.source().getFileName().toString();
            assertFalse(bySource.containsKey(name), "one refusal per jar: " + name + "\n" + bySource.get(name) + "\n" + r.message());
            bySource.put(name, r.message());
        }
        StringBuilder table = new StringBuilder();
        for (Fixture f : matrix) {
            String line = bySource.get(f.file());
            table.append(f.file()).append(" -> ").append(line).append('\n');
            assertTrue(line != null && line.contains(f.verdict()) && !line.contains("\n"), f.file() + ": expected a refusal holding '"
                    + f.verdict() + "', found " + line);
        }
        assertEquals(matrix.size(), registry.refusals().size(), table.toString());
        assertEquals(List.of("good", "thread-throws", "twin"), registry.plugins().stream().map(LoadedPlugin::id).sorted().toList());
        assertEquals(dir.resolve("a-twin.jar"), registry.plugin("twin").orElseThrow().source());
        String warnings = captured.toString(StandardCharsets.UTF_8);
        assertTrue(warnings.contains("anneal: warning: thread \"fx-worker\" ended with IllegalStateException: background boom at threadboom.P."),
                warnings);
        assertFalse(warnings.contains("\tat "), "no stack trace: " + warnings);
        assertTrue(seconds < 30, "the hanging plugin costs its time limit, not more: " + seconds + " s");
        System.out.println(table);
    }
}
