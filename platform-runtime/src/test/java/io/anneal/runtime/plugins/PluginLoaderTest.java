package io.anneal.runtime.plugins;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import io.anneal.api.plugin.Plugin;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.toolkit.cli.CommandArguments;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The loader against real fixture jars compiled in the test: one test per refusal, each checking
 * that the refusal names the plugin (or jar) and that the other plugins still load.
 */
class PluginLoaderTest {
    @TempDir
    Path tmp;

    private Path pluginsDir() throws Exception {
        return Files.createDirectories(tmp.resolve("plugins"));
    }

    private PluginRegistry load(Path dir) {
        PluginRegistry registry = new PluginRegistry();
        new PluginLoader(registry).loadFolder(dir, "test", true);
        return registry;
    }

    private static String refusals(PluginRegistry r) {
        return String.join("\n", r.refusals().stream().map(PluginRefusal::message).toList());
    }

    @Test
    void loadsAModularPluginInItsOwnLayerWithItsExtensions() throws Exception {
        Path dir = pluginsDir();
        FixtureJars.plugin(dir.resolve("good.jar"), "good", "good", "[1.0,2.0)",
                "public List<ExtensionFactory<?>> extensions() { return List.of(" + FixtureJars.scheduleFactory("flat", 0.5) + "); }");
        PluginRegistry r = load(dir);
        assertEquals(List.of(), r.refusals());
        LoadedPlugin p = r.plugin("good").orElseThrow();
        assertEquals("1.2.3", p.version());
        assertEquals(dir.resolve("good.jar"), p.source());
        Module module = p.plugin().getClass().getModule();
        assertEquals("fx.good", module.getName());
        assertNotSame(Plugin.class.getModule().getLayer(), module.getLayer());
        assertEquals(List.of(Plugin.class.getModule().getLayer()), module.getLayer().parents());
        assertEquals(List.of("flat"), r.types(LrSchedule.class));
    }

    @Test
    void loadsAPlainJarAsAnAutomaticModuleThroughMetaInfServices() throws Exception {
        Path dir = pluginsDir();
        FixtureJars.build(dir.resolve("plain-plugin.jar"), Map.of("plain/P.java", FixtureJars.pluginSource("plain", "plain", "1.0", "")),
                Map.of("META-INF/services/io.anneal.api.plugin.Plugin", "plain.P\n"), null);
        PluginRegistry r = load(dir);
        assertEquals(List.of(), r.refusals());
        assertTrue(r.plugin("plain").orElseThrow().plugin().getClass().getModule().getDescriptor().isAutomatic());
    }

    /**
     * A plugin folder that bundles a library the host already has (jackson-core, as plugin-datamix
     * does for DJL's tokenizers): without sharing the host's copy, the plugin's automatic modules
     * would read two modules of one name and the layer would not resolve.
     */
    @Test
    void aBundledCopyOfAHostLibraryIsTakenFromTheHost() throws Exception {
        Path dir = Files.createDirectories(pluginsDir().resolve("with-lib"));
        FixtureJars.build(dir.resolve("plain-plugin.jar"), Map.of("plain/P.java", FixtureJars.pluginSource("plain", "plain", "1.0", "")),
                Map.of("META-INF/services/io.anneal.api.plugin.Plugin", "plain.P\n"), null);
        Module jackson = ModuleLayer.boot().findModule("com.fasterxml.jackson.core").orElseThrow();
        Path hostJar = Path.of(jackson.getLayer().configuration().findModule(jackson.getName()).orElseThrow()
                .reference().location().orElseThrow());
        Files.copy(hostJar, dir.resolve(hostJar.getFileName()));
        PluginRegistry r = load(pluginsDir());
        assertEquals(List.of(), r.refusals());
        assertTrue(r.plugin("plain").isPresent());
    }

    @Test
    void refusesAFileThatIsNotAJarAndABrokenJarAndStillLoadsTheRest() throws Exception {
        Path dir = pluginsDir();
        Files.writeString(dir.resolve("notes.txt"), "hello");
        Files.write(dir.resolve("broken.jar"), FixtureJars.utf8("this is not a zip file"));
        FixtureJars.plugin(dir.resolve("good.jar"), "good", "good", "[1.0,2.0)", "");
        PluginRegistry r = load(dir);
        assertTrue(r.plugin("good").isPresent());
        String all = refusals(r);
        assertEquals(2, r.refusals().size(), all);
        assertTrue(all.contains(dir.resolve("notes.txt") + ": notes.txt is not a jar"), all);
        assertTrue(all.contains(dir.resolve("broken.jar") + ": broken.jar is not a readable jar"), all);
    }

    @Test
    void refusesASplitPackageNamingBothJars() throws Exception {
        Path folder = Files.createDirectories(pluginsDir().resolve("split"));
        FixtureJars.build(folder.resolve("a.jar"), Map.of("shared/A.java", "package shared; public class A {}"), Map.of(), null);
        FixtureJars.build(folder.resolve("b.jar"), Map.of("shared/B.java", "package shared; public class B {}"), Map.of(), null);
        PluginRegistry r = load(folder.getParent());
        String all = refusals(r);
        assertTrue(all.contains("package shared is in both a.jar and b.jar"), all);
    }

    @Test
    void refusesAJarThatBundlesThePlatformApi() throws Exception {
        Path folder = Files.createDirectories(pluginsDir().resolve("bundler"));
        FixtureJars.build(folder.resolve("copy-of-api.jar"),
                Map.of("io/anneal/api/plugin/Extra.java", "package io.anneal.api.plugin; public class Extra {}"), Map.of(), null);
        String all = refusals(load(folder.getParent()));
        assertTrue(all.contains("package io.anneal.api.plugin of copy-of-api.jar is also in the runtime's module io.anneal.api"), all);
    }

    @Test
    void refusesAnIllegalAutomaticModuleName() throws Exception {
        Path dir = pluginsDir();
        FixtureJars.build(dir.resolve("odd.jar"), Map.of("odd/P.java", FixtureJars.pluginSource("odd", "odd", "1.0", "")),
                Map.of("META-INF/services/io.anneal.api.plugin.Plugin", "odd.P\n"), "1-not.a-legal.name");
        String all = refusals(load(dir));
        assertTrue(all.contains("odd.jar cannot be a module"), all);
        assertTrue(all.contains("1-not.a-legal.name"), all);
    }

    @Test
    void refusesTheSecondPluginWithAnIdAlreadyTaken() throws Exception {
        Path dir = pluginsDir();
        FixtureJars.plugin(dir.resolve("a-twin.jar"), "twina", "twin", "[1.0,2.0)", "");
        FixtureJars.plugin(dir.resolve("b-twin.jar"), "twinb", "twin", "[1.0,2.0)", "");
        PluginRegistry r = load(dir);
        assertEquals(dir.resolve("a-twin.jar"), r.plugin("twin").orElseThrow().source());
        assertEquals("plugin 'twin' (" + dir.resolve("b-twin.jar") + "): a plugin with the same id is already loaded from "
                + dir.resolve("a-twin.jar") + "; remove one of the two", refusals(r));
    }

    @Test
    void refusesAnApiRangeWithoutTheCurrentVersionBeforeCallingAnythingElse() throws Exception {
        Path dir = pluginsDir();
        // extensions() would throw: the refusal must be about the API, so it was never called.
        FixtureJars.plugin(dir.resolve("future.jar"), "future", "future", "[2.0,3.0)",
                "public List<ExtensionFactory<?>> extensions() { throw new IllegalStateException(\"called\"); }");
        PluginRegistry r = load(dir);
        assertTrue(r.plugins().isEmpty());
        assertEquals("plugin 'future' (" + dir.resolve("future.jar") + "): built for API [2.0,3.0), but this runtime "
                + "implements API " + io.anneal.api.plugin.ApiVersion.current() + "; use a version of the plugin built for API 1.x",
                refusals(r));
    }

    @Test
    void wrapsAPluginWhoseConstructorOrExtensionsThrow() throws Exception {
        Path dir = pluginsDir();
        FixtureJars.plugin(dir.resolve("ctor.jar"), "ctor", "ctor", "[1.0,2.0)",
                "public P() { throw new IllegalStateException(\"no config\"); }");
        FixtureJars.plugin(dir.resolve("ext.jar"), "ext", "ext", "[1.0,2.0)",
                "public List<ExtensionFactory<?>> extensions() { throw new UnsupportedOperationException(\"boom\"); }");
        FixtureJars.plugin(dir.resolve("ok.jar"), "ok", "ok", "[1.0,2.0)", "");
        PluginRegistry r = load(dir);
        assertEquals(List.of("ok"), r.plugins().stream().map(LoadedPlugin::id).toList());
        String all = refusals(r);
        assertTrue(all.contains(dir.resolve("ctor.jar") + ": ctor.P failed to initialise: ") && all.contains("no config"), all);
        assertTrue(all.contains("plugin 'ext' (" + dir.resolve("ext.jar") + "): failed to initialise: "
                + "UnsupportedOperationException: boom"), all);
    }

    @Test
    void refusesOnlyTheConflictingExtensionOfTheLaterPlugin() throws Exception {
        Path dir = pluginsDir();
        FixtureJars.plugin(dir.resolve("a.jar"), "first", "first", "[1.0,2.0)",
                "public List<ExtensionFactory<?>> extensions() { return List.of(" + FixtureJars.scheduleFactory("same", 1.0) + "); }");
        FixtureJars.plugin(dir.resolve("b.jar"), "second", "second", "[1.0,2.0)",
                "public List<ExtensionFactory<?>> extensions() { return List.of(" + FixtureJars.scheduleFactory("same", 2.0)
                        + ", " + FixtureJars.scheduleFactory("other", 3.0) + "); }");
        PluginRegistry r = load(dir);
        assertTrue(r.plugin("second").isPresent());
        assertEquals("first", r.extension(LrSchedule.class, "same").orElseThrow().plugin().id());
        assertEquals("second", r.extension(LrSchedule.class, "other").orElseThrow().plugin().id());
        assertEquals("plugin 'second' (" + dir.resolve("b.jar") + "): its lr-schedule type 'same' is already offered by "
                + "plugin 'first' (" + dir.resolve("a.jar") + "); this one is not loaded", refusals(r));
    }

    @Test
    void loadsAPluginModuleThatRequiresTheToolkitFromTheHostLayer() throws Exception {
        // The toolkit ships in the runtime's lib/ (the host layer), never in a plugin's folder: a plugin
        // module that requires it resolves against the host's copy and runs its code.
        Path dir = pluginsDir();
        FixtureJars.build(dir.resolve("tooled.jar"), Map.of("module-info.java",
                "module fx.tooled { requires io.anneal.api; requires io.anneal.toolkit; provides io.anneal.api.plugin.Plugin with tooled.P; }",
                "tooled/P.java", FixtureJars.pluginSource("tooled", "tooled", "[1.0,2.0)",
                        "  public static final long TOKENS = io.anneal.toolkit.cli.CommandArguments.parse(\"t\", \"usage: t\","
                                + " List.of(\"--tokens\", \"4M\"), \"tokens\").tokens(\"tokens\", 1L);\n"
                                + "  public String toString() { return \"tokens \" + TOKENS; }")),
                Map.of(), null, FixtureJars.locationOf(CommandArguments.class));
        PluginRegistry r = load(dir);
        assertEquals(List.of(), r.refusals());
        Plugin plugin = r.plugin("tooled").orElseThrow().plugin();
        assertEquals("tokens 4000000", plugin.toString(), "the plugin ran the toolkit's parser");
        Module toolkit = CommandArguments.class.getModule();
        assertTrue(plugin.getClass().getModule().canRead(toolkit));
        assertEquals(Plugin.class.getModule().getLayer(), toolkit.getLayer(), "the toolkit is in the host layer, beside the API");
    }

    @Test
    void refusesAPluginModuleThatRequiresTheRuntime() throws Exception {
        // A stand-in module named io.anneal.runtime to compile against; at load time the real one
        // is in the parent layer, so only the loader's own check can refuse it.
        Path stub = FixtureJars.build(tmp.resolve("runtime-stub.jar"), Map.of("module-info.java",
                "module io.anneal.runtime { exports stub; }", "stub/S.java", "package stub; public class S {}"), Map.of(), null);
        Path dir = pluginsDir();
        FixtureJars.build(dir.resolve("sneaky.jar"), Map.of("module-info.java",
                "module fx.sneaky { requires io.anneal.api; requires io.anneal.runtime; provides io.anneal.api.plugin.Plugin with sneaky.P; }",
                "sneaky/P.java", FixtureJars.pluginSource("sneaky", "sneaky", "[1.0,2.0)", "")), Map.of(), null, stub);
        String all = refusals(load(dir));
        assertTrue(all.contains("module fx.sneaky (sneaky.jar) requires io.anneal.runtime"), all);
    }

    @Test
    void refusesAPluginModuleThatRequiresALibraryOnlyTheRuntimeHas() throws Exception {
        // typesafe-config is in the runtime's layer; the plugin requires it without bundling it.
        Module config = ModuleLayer.boot().findModule("typesafe.config").orElseThrow();
        Path configJar = Path.of(config.getLayer().configuration().findModule(config.getName()).orElseThrow()
                .reference().location().orElseThrow());
        Path dir = pluginsDir();
        FixtureJars.build(dir.resolve("leaning.jar"), Map.of("module-info.java",
                "module fx.leaning { requires io.anneal.api; requires typesafe.config; provides io.anneal.api.plugin.Plugin with leaning.P; }",
                "leaning/P.java", FixtureJars.pluginSource("leaning", "leaning", "[1.0,2.0)", "")), Map.of(), null, configJar);
        String all = refusals(load(dir));
        assertTrue(all.contains("module fx.leaning (leaning.jar) requires typesafe.config, which the plugin does not bundle"), all);
        // The same plugin with its own copy of the library loads (and shares the runtime's copy).
        Path withLib = Files.createDirectories(tmp.resolve("plugins2").resolve("leaning"));
        Files.copy(dir.resolve("leaning.jar"), withLib.resolve("leaning.jar"));
        Files.copy(configJar, withLib.resolve(configJar.getFileName()));
        PluginRegistry r = load(withLib.getParent());
        assertEquals(List.of(), r.refusals());
        assertTrue(r.plugin("leaning").isPresent());
    }

    @Test
    void aMissingFolderNamedByTheUserIsBadInputAndOtherwiseARefusal() {
        Path missing = tmp.resolve("nowhere");
        InputException e = assertThrows(InputException.class, () -> PluginSources.load(null, null, List.of(missing.toString())));
        assertTrue(e.getMessage().startsWith(missing + ": plugins folder does not exist"), e.getMessage());
        PluginRegistry r = PluginSources.load(null, missing.toString(), List.of());
        assertTrue(refusals(r).contains("named by ANNEAL_PLUGINS"), refusals(r));
        assertTrue(r.plugin("core").isPresent());
    }
}
