package io.anneal.runtime.plugins;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.api.plugin.ApiVersion;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.plugin.Plugin;
import io.anneal.api.plugin.VersionRange;
import io.anneal.toolkit.cli.CommandArguments;
import java.io.IOException;
import java.lang.module.Configuration;
import java.lang.module.FindException;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.lang.module.ResolutionException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Finds plugins in folders and gives each its own {@link ModuleLayer}, a child of the layer of
 * {@code io.anneal.api} (which also holds the toolkit {@code io.anneal.toolkit} and DJL, initialised
 * once per JVM). Each entry of a plugins
 * folder is one plugin: a jar, or a folder holding the plugin jar and its own dependency jars.
 *
 * <p>Every problem becomes a {@link PluginRefusal} in the registry, and loading goes on with the
 * next plugin: one bad jar never stops the runtime (JUnit's discovery orchestrator does the same;
 * Trino stops at the first failure, which we do not follow).
 */
public final class PluginLoader {
    private static final Pattern PLUGIN_ID = Pattern.compile("[a-z0-9][a-z0-9-]*");
    private static final String RUNTIME_MODULE = "io.anneal.runtime";
    /**
     * The modules of ours a plugin may read (DESIGN.md, Modules): the contract and the toolkit, both in
     * the host layer that is every plugin layer's parent (the toolkit is in the runtime's lib/).
     */
    private static final List<Module> PLUGIN_VISIBLE = List.of(Plugin.class.getModule(), CommandArguments.class.getModule());

    private final ModuleLayer apiLayer = Plugin.class.getModule().getLayer() != null
            ? Plugin.class.getModule().getLayer() : ModuleLayer.boot();
    private final PluginRegistry registry;
    /** The modules of the host (the API layer and its parents), by name and by package: built once. */
    private final Map<String, Module> hostModules = new HashMap<>();
    private final Map<String, Module> hostPackages = new HashMap<>();

    /** The longest a plugin's initialisation (constructor, id, version, extensions, commands, defaults) may take. */
    static final long DEFAULT_INIT_TIMEOUT_MILLIS = 30_000;
    private long initTimeoutMillis = DEFAULT_INIT_TIMEOUT_MILLIS;

    public PluginLoader(PluginRegistry registry) {
        this.registry = registry;
        ExitGuard.nameTheExit();
        reportDyingThreadsInOneLine();
        Set<ModuleLayer> layers = new LinkedHashSet<>();
        collectLayers(apiLayer, layers);
        for (ModuleLayer l : layers) {
            for (Module m : l.modules()) {
                hostModules.putIfAbsent(m.getName(), m);
                m.getPackages().forEach(p -> hostPackages.putIfAbsent(p, m));
            }
        }
    }

    /** A shorter initialisation limit, for tests of plugins that hang. */
    PluginLoader withInitTimeout(long millis) {
        this.initTimeoutMillis = millis;
        return this;
    }

    /**
     * A thread that ends with an exception nobody catches (a plugin's background thread, say) is reported
     * in one line naming the thread, the exception and the frame and module it came from, instead of the
     * JVM's default stack trace; the run goes on. Set once, unless the application set its own handler.
     */
    private static void reportDyingThreadsInOneLine() {
        if (Thread.getDefaultUncaughtExceptionHandler() != null) {
            return;
        }
        Thread.setDefaultUncaughtExceptionHandler((thread, e) -> {
            StackTraceElement[] stack = e.getStackTrace();
            String where = stack.length == 0 ? "" : " at " + stack[0].getClassName() + "." + stack[0].getMethodName() + "("
                    + stack[0].getFileName() + ":" + stack[0].getLineNumber() + ")"
                    + (stack[0].getModuleName() == null ? "" : ", module " + stack[0].getModuleName());
            System.err.println("anneal: warning: thread \"" + thread.getName() + "\" ended with " + rootMessage(e) + where);
        });
    }

    /** Registers a plugin that lives in the runtime itself (the {@code core} plugin). */
    public void registerBuiltin(Plugin plugin, URL defaults) {
        Config parsed = defaults == null ? ConfigFactory.empty()
                : ConfigFactory.parseURL(defaults, defaultsOptions(plugin.id())).resolve();
        LoadedPlugin loaded = new LoadedPlugin(plugin, plugin.id(), plugin.version(), plugin.apiRange(), null, parsed);
        registry.register(loaded, plugin.extensions(), plugin.commands());
    }

    /**
     * Loads every plugin in {@code folder}.
     *
     * @param namedBy how the folder was named ({@code --plugins}, {@code ANNEAL_PLUGINS}, ...) for messages
     * @param mustExist true for a folder the user named: a missing one is bad input (exit 2)
     */
    public void loadFolder(Path folder, String namedBy, boolean mustExist) {
        if (!Files.isDirectory(folder)) {
            String reason = "plugins folder does not exist or is not a folder (named by " + namedBy + ")";
            if (mustExist) {
                throw new InputException(folder + ": " + reason);
            }
            registry.refuse(new PluginRefusal(null, folder, reason));
            return;
        }
        for (Path entry : list(folder)) {
            if (Files.isDirectory(entry)) {
                List<Path> jars = list(entry).stream().filter(Files::isRegularFile).collect(Collectors.toList());
                if (jars.isEmpty()) {
                    registry.refuse(new PluginRefusal(null, entry, "plugin folder holds no jar"));
                } else {
                    loadPlugin(entry, jars);
                }
            } else {
                loadPlugin(entry, List.of(entry));
            }
        }
    }

    private static List<Path> list(Path folder) {
        try (Stream<Path> s = Files.list(folder)) {
            return s.filter(p -> !p.getFileName().toString().startsWith(".")).sorted().collect(Collectors.toList());
        } catch (IOException e) {
            throw new InputException(folder + ": cannot list the plugins folder: " + e.getMessage(), e);
        }
    }

    /** Loads one plugin from its jars; every failure is a refusal naming {@code source}. */
    void loadPlugin(Path source, List<Path> jars) {
        Map<Path, Set<String>> packagesByJar = new LinkedHashMap<>();
        List<String> problems = new ArrayList<>();
        for (Path jar : jars) {
            if (!jar.getFileName().toString().endsWith(".jar")) {
                problems.add(jar.getFileName() + " is not a jar (a plugin is a .jar file, or a folder of a plugin jar and its dependency jars)");
                continue;
            }
            try {
                packagesByJar.put(jar, packagesOf(jar));
            } catch (IOException e) {
                problems.add(jar.getFileName() + " is not a readable jar (" + e.getClass().getSimpleName() + ": " + e.getMessage() + ")");
            }
        }
        Map<Path, ModuleDescriptor> descriptors = new LinkedHashMap<>();
        for (Path jar : packagesByJar.keySet()) {
            try {
                ModuleFinder.of(jar).findAll().forEach(ref -> descriptors.put(jar, ref.descriptor()));
            } catch (FindException e) {
                problems.add(jar.getFileName() + " cannot be a module: " + rootMessage(e)
                        + " (an illegal Automatic-Module-Name or file name; rename the jar or fix its manifest)");
            }
        }
        problems.addAll(requiresOnlyTheApiAndItsOwnJars(descriptors));
        problems.addAll(shareHostCopies(packagesByJar, descriptors));
        problems.addAll(splitPackages(packagesByJar, descriptors));
        if (!problems.isEmpty()) {
            problems.forEach(p -> registry.refuse(new PluginRefusal(null, source, p)));
            return;
        }
        ModuleLayer layer;
        try {
            Set<String> roots = descriptors.values().stream().map(ModuleDescriptor::name).collect(Collectors.toSet());
            Configuration cf = apiLayer.configuration()
                    .resolveAndBind(ModuleFinder.of(descriptors.keySet().toArray(Path[]::new)), ModuleFinder.of(), roots);
            layer = ModuleLayer.defineModulesWithOneLoader(cf, List.of(apiLayer), ClassLoader.getPlatformClassLoader()).layer();
        } catch (FindException | ResolutionException | LayerInstantiationException | SecurityException e) {
            registry.refuse(new PluginRefusal(null, source, "its modules do not resolve: " + rootMessage(e)));
            return;
        }
        List<ServiceLoader.Provider<Plugin>> providers;
        try {
            // Keep only providers defined in this layer: the layer's service loader also sees its parents'.
            providers = ServiceLoader.load(layer, Plugin.class).stream()
                    .filter(p -> p.type().getModule().getLayer() == layer).collect(Collectors.toList());
        } catch (java.util.ServiceConfigurationError e) {
            registry.refuse(new PluginRefusal(null, source, "its service declaration is broken: " + rootMessage(e)));
            return;
        }
        if (providers.isEmpty()) {
            registry.refuse(new PluginRefusal(null, source, "no io.anneal.api.plugin.Plugin provider found (declare "
                    + "'provides io.anneal.api.plugin.Plugin with ...' in module-info.java, or "
                    + "META-INF/services/io.anneal.api.plugin.Plugin in a plain jar)"));
            return;
        }
        ClassLoader loader = layer.modules().iterator().next().getClassLoader();
        for (ServiceLoader.Provider<Plugin> provider : providers) {
            Optional<String> exitCall = exitCallOf(layer, provider);
            if (exitCall.isPresent()) {
                registry.refuse(new PluginRefusal(null, source, provider.type().getName() + " is refused before it runs: "
                        + exitCall.get() + "; a plugin must never end the process"));
                continue;
            }
            initialise(source, provider, loader);
        }
    }

    /** A call to System.exit, Runtime.exit or Runtime.halt in the jar of the module that provides the plugin. */
    private static Optional<String> exitCallOf(ModuleLayer layer, ServiceLoader.Provider<Plugin> provider) {
        Optional<Path> jar = layer.configuration().findModule(provider.type().getModule().getName())
                .flatMap(m -> m.reference().location()).map(Path::of);
        try {
            return jar.isPresent() ? ExitGuard.exitCallIn(jar.get()) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty(); // the jar was read to build the layer; the loader reports what is wrong with it
        }
    }

    /**
     * Initialises one plugin on a thread of its own, under an {@link ExitGuard}, for at most
     * {@link #initTimeoutMillis}: a plugin that hangs or throws anything is refused
     * in one line, and the rest load. A plugin still running after the limit is left behind (a daemon
     * thread) and refused, naming where it is stuck; nothing it does later reaches the registry.
     */
    private void initialise(Path source, ServiceLoader.Provider<Plugin> provider, ClassLoader loader) {
        String label = provider.type().getName();
        java.util.concurrent.FutureTask<Runnable> task = new java.util.concurrent.FutureTask<>(
                () -> initialiseOutcome(source, provider, loader));
        Thread thread = new Thread(task, "plugin-init " + source.getFileName());
        thread.setDaemon(true);
        thread.setContextClassLoader(loader);
        Runnable outcome;
        try (ExitGuard guard = ExitGuard.open("plugin " + label + " (" + source + ")")) {
            thread.start();
            outcome = task.get(initTimeoutMillis, java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            StackTraceElement[] stack = thread.getStackTrace();
            String where = java.util.Arrays.stream(stack).filter(f -> f.getClassName().startsWith(label.substring(0, Math.max(0,
                    label.lastIndexOf('.')))) || f.getClassName().equals(label)).findFirst()
                    .map(StackTraceElement::toString).orElse(stack.length > 0 ? stack[0].toString() : "an unknown place");
            outcome = () -> registry.refuse(new PluginRefusal(null, source, label + " did not finish initialising within "
                    + initTimeoutMillis / 1000.0 + " s (stuck at " + where + "); it is not loaded"));
        } catch (java.util.concurrent.ExecutionException e) {
            rethrowFatal(e.getCause());
            outcome = () -> registry.refuse(new PluginRefusal(null, source, label + " failed to initialise: " + rootMessage(e.getCause())));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            outcome = () -> registry.refuse(new PluginRefusal(null, source, label + " was not initialised: interrupted"));
        }
        outcome.run();
    }

    /** What initialising the plugin leads to (registered or refused), applied by the loader's thread. */
    private Runnable initialiseOutcome(Path source, ServiceLoader.Provider<Plugin> provider, ClassLoader loader) {
        String label = provider.type().getName();
        Plugin plugin;
        VersionRange range;
        try {
            plugin = provider.get();
            range = Objects.requireNonNull(plugin.apiRange(), "apiRange() returned null");
        } catch (Throwable e) { // a plugin's own code: any failure is a refusal, never a crash
            rethrowFatal(e);
            return () -> registry.refuse(new PluginRefusal(null, source, label + " failed to initialise: " + rootMessage(e)));
        }
        ApiVersion current = ApiVersion.current();
        if (!range.contains(current)) {
            String id = quietly(plugin::id);
            return () -> registry.refuse(new PluginRefusal(id, source, "built for API " + range + ", but this runtime implements API "
                    + current + "; use a version of the plugin built for API " + current.major() + ".x"));
        }
        String id;
        try {
            id = Objects.requireNonNull(plugin.id(), "id() returned null");
        } catch (Throwable e) {
            rethrowFatal(e);
            return () -> registry.refuse(new PluginRefusal(null, source, label + " failed to initialise: " + rootMessage(e)));
        }
        if (!PLUGIN_ID.matcher(id).matches()) {
            return () -> registry.refuse(new PluginRefusal(id, source, "its id must be lower-case letters, digits and dashes"));
        }
        try {
            String version = Objects.requireNonNull(plugin.version(), "version() returned null");
            List<ExtensionFactory<?>> factories = List.copyOf(plugin.extensions());
            for (ExtensionFactory<?> f : factories) {
                Objects.requireNonNull(f.extensionPoint(), () -> f.getClass().getName() + ".extensionPoint() returned null");
                Objects.requireNonNull(f.type(), () -> f.getClass().getName() + ".type() returned null");
            }
            List<CliCommand> commands = List.copyOf(plugin.commands());
            commands.forEach(c -> Objects.requireNonNull(c.name(), () -> c.getClass().getName() + ".name() returned null"));
            // resolved on its own: a plugin may use substitutions inside its reference.conf
            Config defaults = ConfigFactory.parseResources(loader, "reference.conf", defaultsOptions(id)).resolve();
            LoadedPlugin loaded = new LoadedPlugin(plugin, id, version, range, source, defaults);
            return () -> registry.register(loaded, factories, commands);
        } catch (Throwable e) {
            rethrowFatal(e);
            String refusedId = id;
            return () -> registry.refuse(new PluginRefusal(refusedId, source, "failed to initialise: " + rootMessage(e)));
        }
    }

    /** Origins of defaults read {@code default of plugin <id>}; the line is added by the parser. */
    static ConfigParseOptions defaultsOptions(String pluginId) {
        return ConfigParseOptions.defaults().setOriginDescription("default of plugin " + pluginId);
    }

    private static Set<String> packagesOf(Path jar) throws IOException {
        Set<String> packages = new LinkedHashSet<>();
        try (JarFile file = new JarFile(jar.toFile())) {
            Enumeration<JarEntry> entries = file.entries();
            while (entries.hasMoreElements()) {
                String name = entries.nextElement().getName();
                int slash = name.lastIndexOf('/');
                if (name.endsWith(".class") && slash > 0 && !name.startsWith("META-INF/")) {
                    packages.add(name.substring(0, slash).replace('/', '.'));
                }
            }
        }
        return packages;
    }

    /**
     * A package in two jars of one plugin, or in a plugin jar and a module of the runtime's API
     * layer under another name, breaks layer resolution with an obscure message; name both jars.
     */
    private List<String> splitPackages(Map<Path, Set<String>> packagesByJar, Map<Path, ModuleDescriptor> descriptors) {
        List<String> problems = new ArrayList<>();
        Map<String, Path> owner = new HashMap<>();
        packagesByJar.forEach((jar, packages) -> {
            for (String pkg : packages) {
                Path first = owner.putIfAbsent(pkg, jar);
                if (first != null && !first.equals(jar)) {
                    problems.add("package " + pkg + " is in both " + first.getFileName() + " and " + jar.getFileName()
                            + " (a split package); keep it in one jar");
                }
            }
        });
        Set<String> reported = new LinkedHashSet<>();
        descriptors.forEach((jar, d) -> {
            for (String pkg : packagesByJar.getOrDefault(jar, Set.of())) {
                Module host = hostPackages.get(pkg);
                if (host != null && !host.getName().equals(d.name()) && reported.add(jar + host.getName())) {
                    problems.add("package " + pkg + " of " + jar.getFileName() + " is also in the runtime's module "
                            + host.getName() + " (" + locationOf(host) + "); a plugin must not bundle it: declare it "
                            + "'provided' in the plugin's pom");
                }
            }
        });
        return problems;
    }

    /**
     * A plugin sees platform-api and platform-toolkit (and DJL, which they export transitively), the
     * JDK and its own jars, not the runtime's libraries: an explicit module that requires the runtime,
     * or a host library it does not bundle (Guice, typesafe-config, ...), is refused before its layer
     * is built, instead of resolving silently against the runtime's copy and breaking when the
     * runtime changes it. Automatic modules read every module and cannot be held to this.
     */
    private List<String> requiresOnlyTheApiAndItsOwnJars(Map<Path, ModuleDescriptor> descriptors) {
        Set<String> visible = new HashSet<>();
        for (Module shared : PLUGIN_VISIBLE) {
            visible.add(shared.getName());
            shared.getDescriptor().requires().stream()
                    .filter(r -> r.modifiers().contains(ModuleDescriptor.Requires.Modifier.TRANSITIVE))
                    .forEach(r -> visible.add(r.name()));
        }
        descriptors.values().forEach(d -> visible.add(d.name()));
        List<String> problems = new ArrayList<>();
        descriptors.forEach((jar, d) -> {
            for (ModuleDescriptor.Requires r : d.requires()) {
                String name = r.name();
                boolean jdk = name.startsWith("java.") || name.startsWith("jdk.");
                if (r.modifiers().contains(ModuleDescriptor.Requires.Modifier.STATIC) || jdk || visible.contains(name)) {
                    continue;
                }
                problems.add(name.equals(RUNTIME_MODULE)
                        ? "module " + d.name() + " (" + jar.getFileName() + ") requires " + RUNTIME_MODULE
                                + "; a plugin may depend on io.anneal.api, io.anneal.toolkit and third-party libraries only"
                        : "module " + d.name() + " (" + jar.getFileName() + ") requires " + name + ", which the plugin "
                                + "does not bundle; a plugin sees platform-api, platform-toolkit, DJL and its own jars, not the runtime's "
                                + "libraries: put " + name + "'s jar into the plugin's folder");
            }
        });
        return problems;
    }

    /**
     * A library the plugin bundles that the host layer already holds as the same module at the same
     * version (jackson-core, say) is taken from the host: with the two copies, every automatic
     * module of the plugin would read two modules of one name and the layer would not resolve.
     * The same module at another version is a refusal naming both versions, never a silent pick.
     */
    private List<String> shareHostCopies(Map<Path, Set<String>> packagesByJar, Map<Path, ModuleDescriptor> descriptors) {
        List<String> problems = new ArrayList<>();
        for (Map.Entry<Path, ModuleDescriptor> e : List.copyOf(descriptors.entrySet())) {
            Module host = hostModules.get(e.getValue().name());
            if (host == null || host.getName().startsWith("io.anneal.")) {
                continue;
            }
            String ours = e.getValue().rawVersion().orElse("?");
            String theirs = host.getDescriptor().rawVersion().orElse("?");
            if (ours.equals(theirs) || ours.equals("?") || theirs.equals("?")) {
                descriptors.remove(e.getKey());
                packagesByJar.remove(e.getKey());
            } else {
                problems.add(e.getKey().getFileName() + " is module " + host.getName() + " " + ours + ", which the runtime "
                        + "already has at version " + theirs + " (" + locationOf(host) + "); build the plugin against "
                        + theirs + " (the anneal-bom version) or leave the jar out");
            }
        }
        return problems;
    }

    private static void collectLayers(ModuleLayer layer, Set<ModuleLayer> out) {
        if (out.add(layer)) {
            layer.parents().forEach(p -> collectLayers(p, out));
        }
    }

    private static String locationOf(Module module) {
        return module.getLayer().configuration().findModule(module.getName())
                .flatMap(r -> r.reference().location()).map(u -> Path.of(u).getFileName().toString())
                .orElse("the JDK");
    }

    private static String quietly(Callable<String> call) {
        try {
            return call.call();
        } catch (Throwable e) {
            rethrowFatal(e);
            return null;
        }
    }

    /**
     * Errors the process cannot go on after. A StackOverflowError is not one of them: the plugin's stack is
     * unwound when it reaches here (a constructor recursing without end is a refused plugin, not a crash).
     */
    private static void rethrowFatal(Throwable e) {
        if (e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) {
            throw (VirtualMachineError) e;
        }
    }

    /** The exception's class and message, with the innermost cause's message when it says more. */
    static String rootMessage(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String own = e.getClass().getSimpleName() + ": " + e.getMessage();
        return root == e ? own : own + " (caused by " + root.getClass().getSimpleName() + ": " + root.getMessage() + ")";
    }

}
