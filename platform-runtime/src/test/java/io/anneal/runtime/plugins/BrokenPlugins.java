package io.anneal.runtime.plugins;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The broken-plugin matrix of issue 15: each broken fixture (a file in a plugins folder, built here
 * with javac from source, never committed as a binary) with the verdict its one-line refusal must
 * hold, and the companions that must load beside them. {@link BrokenPluginMatrixTest} loads the
 * folder in process; the distribution's BrokenPluginsIT drops the same folder into a copy of the
 * assembled distribution and runs bin/anneal. Published to that module as this module's test jar
 * (only this class and {@link FixtureJars}).
 */
public final class BrokenPlugins {
    private BrokenPlugins() {
    }

    /** A broken fixture: the file it is, how it is built, and the verdict its one-line refusal must hold. */
    public record Fixture(String file, Builder build, String verdict) {
    }

    @FunctionalInterface
    public interface Builder {
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

    /**
     * The broken fixtures; {@code initTimeoutMillis} is the loader's initialisation limit, which the hanging
     * plugin's verdict names (30 s in bin/anneal, shorter in process).
     */
    public static List<Fixture> matrix(long initTimeoutMillis) {
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
                "hang.P did not finish initialising within " + initTimeoutMillis / 1000.0 + " s (stuck at fx.hang/hang.P.<init>(P.java:"));
        m.add(new Fixture("b-twin.jar", plugin("twinb", "twin", "[1.0,2.0)", ""), "a plugin with the same id is already loaded from"));
        return m;
    }

    /**
     * Builds every broken fixture into {@code folder} with the companions that load: a-twin.jar (whose id
     * b-twin.jar repeats), good.jar, and thread-throws.jar (it starts a thread that throws: it loads, and
     * the failure is one line on stderr naming the thread). Returns the broken ones.
     */
    public static List<Fixture> buildFolder(Path folder, long initTimeoutMillis) throws Exception {
        Files.createDirectories(folder);
        List<Fixture> matrix = matrix(initTimeoutMillis);
        for (Fixture f : matrix) {
            f.build().into(folder.resolve(f.file()));
        }
        FixtureJars.plugin(folder.resolve("a-twin.jar"), "twina", "twin", "[1.0,2.0)", "");
        FixtureJars.plugin(folder.resolve("good.jar"), "good", "good", "[1.0,2.0)", "");
        FixtureJars.plugin(folder.resolve("thread-throws.jar"), "threadboom", "thread-throws", "[1.0,2.0)",
                "public P() { Thread t = new Thread(() -> { throw new IllegalStateException(\"background boom\"); }, \"fx-worker\");"
                        + " t.start(); try { t.join(); } catch (InterruptedException e) { } }");
        return matrix;
    }

    /**
     * A plugin whose constructor ends the process through reflection, which the scan of its classes
     * for exit calls cannot see: the exit is named as it happens (ExitGuard) and the process ends with
     * exit 2. Never in a folder with others: it ends the host that loads it.
     */
    public static Path exitThroughReflection(Path jar) throws Exception {
        return FixtureJars.plugin(jar, "reflexit", "reflective-exit", "[1.0,2.0)",
                "public P() throws Exception { Class.forName(\"java.lang.System\").getMethod(\"exit\", int.class).invoke(null, 3); }");
    }

    /** The ids of the companions that load from a folder {@link #buildFolder} made. */
    public static final List<String> LOADED = List.of("good", "thread-throws", "twin");

    /** The one line the thread of thread-throws.jar leaves on stderr. */
    public static final String THREAD_WARNING =
            "anneal: warning: thread \"fx-worker\" ended with IllegalStateException: background boom at threadboom.P.";
}
