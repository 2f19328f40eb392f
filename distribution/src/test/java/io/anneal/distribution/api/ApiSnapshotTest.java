package io.anneal.distribution.api;

import static org.junit.jupiter.api.Assertions.fail;

import io.anneal.api.Experimental;
import io.anneal.api.Stable;
import io.anneal.toolkit.cli.CommandArguments;
import java.io.IOException;
import java.io.InputStream;
import java.lang.module.ModuleDescriptor;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Until there is a release for japicmp/revapi to compare with, the stable API, the toolkit's
 * surface and every module descriptor are compared with committed snapshots (JUnit 5's JarDescribeModuleTests idea), so a
 * change to them is a reviewed diff, never an accident. After a deliberate change run
 * {@code mvn -pl distribution test -Dtest=ApiSnapshotTest -Danneal.snapshot.update=true} and
 * commit the snapshot files with the change.
 */
class ApiSnapshotTest {
    private static final Path SNAPSHOTS = Paths.get("src/test/resources/api");

    @Test
    void stableApiSignaturesMatchTheCommittedSnapshot() throws Exception {
        ModuleDescriptor api = descriptors().stream().filter(d -> d.name().equals("io.anneal.api")).findFirst()
                .orElseThrow(() -> new AssertionError("no module-info.class of io.anneal.api on the test class path"));
        List<String> lines = new ArrayList<>();
        for (ModuleDescriptor.Exports e : new TreeSet<>(api.exports())) {
            lines.add("exports " + e.source());
        }
        for (Class<?> type : typesIn(Stable.class, api.exports().stream().map(ModuleDescriptor.Exports::source).collect(Collectors.toSet()))) {
            if (type.isAnnotationPresent(Stable.class)) {
                lines.addAll(signature(type));
            }
        }
        compare("stable-api.txt", lines);
    }

    /**
     * The toolkit's exported surface, every type with its {@code @Experimental} status: the toolkit
     * promises less than the contract (a type may change in a minor version), but a change to it is
     * still a reviewed diff, never an accident.
     */
    @Test
    void toolkitSignaturesMatchTheCommittedSnapshot() throws Exception {
        ModuleDescriptor toolkit = descriptors().stream().filter(d -> d.name().equals("io.anneal.toolkit")).findFirst()
                .orElseThrow(() -> new AssertionError("no module-info.class of io.anneal.toolkit on the test class path"));
        List<String> lines = new ArrayList<>();
        for (ModuleDescriptor.Exports e : new TreeSet<>(toolkit.exports())) {
            lines.add("exports " + e.source());
        }
        for (Class<?> type : typesIn(CommandArguments.class,
                toolkit.exports().stream().map(ModuleDescriptor.Exports::source).collect(Collectors.toSet()))) {
            if (Modifier.isPublic(type.getModifiers())) {
                Experimental status = type.getAnnotation(Experimental.class);
                lines.add(status == null ? "(no status)" : "@Experimental(since = \"" + status.since() + "\")");
                lines.addAll(signature(type));
            }
        }
        compare("toolkit-api.txt", lines);
    }

    @Test
    void moduleDescriptorsMatchTheCommittedSnapshot() throws Exception {
        List<String> lines = new ArrayList<>();
        for (ModuleDescriptor d : descriptors()) {
            lines.add("module " + d.name());
            d.requires().stream().map(r -> "  requires " + r.modifiers().stream().map(Object::toString).sorted()
                    .map(m -> m.toLowerCase() + " ").collect(Collectors.joining()) + r.name()).sorted().forEach(lines::add);
            d.exports().stream().map(e -> "  exports " + e.source() + (e.isQualified() ? " to " + new TreeSet<>(e.targets()) : ""))
                    .sorted().forEach(lines::add);
            d.opens().stream().map(o -> "  opens " + o.source() + (o.isQualified() ? " to " + new TreeSet<>(o.targets()) : ""))
                    .sorted().forEach(lines::add);
            d.uses().stream().map(u -> "  uses " + u).sorted().forEach(lines::add);
            d.provides().stream().map(p -> "  provides " + p.service() + " with " + String.join(",", p.providers()))
                    .sorted().forEach(lines::add);
        }
        compare("modules.txt", lines);
    }

    /** The module descriptors of every io.anneal module on the test class path, by name. */
    private static List<ModuleDescriptor> descriptors() throws IOException {
        List<ModuleDescriptor> found = new ArrayList<>();
        Enumeration<URL> urls = ApiSnapshotTest.class.getClassLoader().getResources("module-info.class");
        for (URL url : Collections.list(urls)) {
            try (InputStream in = url.openStream()) {
                ModuleDescriptor d = ModuleDescriptor.read(in);
                if (d.name().startsWith("io.anneal.")) {
                    found.add(d);
                }
            }
        }
        found.sort((a, b) -> a.name().compareTo(b.name()));
        return found;
    }

    /** The top-level types in {@code packages} of the jar (or classes folder) that holds {@code anchor}. */
    private static List<Class<?>> typesIn(Class<?> anchor, Set<String> packages)
            throws IOException, URISyntaxException, ClassNotFoundException {
        URL location = anchor.getProtectionDomain().getCodeSource().getLocation();
        Path root = Paths.get(location.toURI());
        List<String> names;
        if (Files.isDirectory(root)) {
            names = classNames(root);
        } else {
            try (FileSystem jar = FileSystems.newFileSystem(root)) {
                names = classNames(jar.getPath("/"));
            }
        }
        List<Class<?>> types = new ArrayList<>();
        for (String n : new TreeSet<>(names)) {
            String pkg = n.substring(0, n.lastIndexOf('.'));
            if (packages.contains(pkg) && !n.contains("$")) {
                types.add(Class.forName(n, false, anchor.getClassLoader()));
            }
        }
        return types;
    }

    private static List<String> classNames(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            return s.map(p -> root.relativize(p).toString()).filter(p -> p.endsWith(".class") && !p.endsWith("module-info.class"))
                    .map(p -> p.substring(0, p.length() - ".class".length()).replace('/', '.').replace('\\', '.'))
                    .collect(Collectors.toList());
        }
    }

    /** The public and protected surface of a type and its public nested types, one sorted line per member. */
    private static List<String> signature(Class<?> type) {
        List<String> out = new ArrayList<>();
        String kind = type.isAnnotation() ? "@interface" : type.isRecord() ? "record" : type.isEnum() ? "enum"
                : type.isInterface() ? "interface" : "class";
        StringBuilder head = new StringBuilder(kind + " " + type.getName());
        if (type.getGenericSuperclass() != null && type.getSuperclass() != Object.class && !type.isRecord() && !type.isEnum()) {
            head.append(" extends ").append(type.getGenericSuperclass().getTypeName());
        }
        if (type.getGenericInterfaces().length > 0) {
            head.append(type.isInterface() ? " extends " : " implements ");
            head.append(Stream.of(type.getGenericInterfaces()).map(java.lang.reflect.Type::getTypeName).collect(Collectors.joining(", ")));
        }
        if (Modifier.isFinal(type.getModifiers()) && !type.isRecord() && !type.isEnum()) {
            head.append(" final");
        }
        out.add(head.toString());
        Set<String> members = new TreeSet<>();
        if (type.isRecord()) {
            for (RecordComponent c : type.getRecordComponents()) {
                members.add("  component " + c.getGenericType().getTypeName() + " " + c.getName());
            }
        }
        for (Constructor<?> c : type.getDeclaredConstructors()) {
            if (visible(c.getModifiers())) {
                members.add("  " + c.toGenericString());
            }
        }
        for (Method m : type.getDeclaredMethods()) {
            if (visible(m.getModifiers()) && !m.isSynthetic() && !m.isBridge()) {
                members.add("  " + m.toGenericString() + (m.isDefault() ? " [default]" : ""));
            }
        }
        for (Field f : type.getDeclaredFields()) {
            if (visible(f.getModifiers()) && !f.isSynthetic()) {
                members.add("  " + f.toGenericString());
            }
        }
        out.addAll(members);
        for (Class<?> nested : type.getDeclaredClasses()) {
            if (visible(nested.getModifiers())) {
                out.addAll(signature(nested));
            }
        }
        return out;
    }

    private static boolean visible(int modifiers) {
        return Modifier.isPublic(modifiers) || Modifier.isProtected(modifiers);
    }

    private static void compare(String file, List<String> actual) throws IOException {
        Path snapshot = SNAPSHOTS.resolve(file);
        if (Boolean.getBoolean("anneal.snapshot.update")) {
            Files.createDirectories(SNAPSHOTS);
            Files.write(snapshot, actual, StandardCharsets.UTF_8);
            return;
        }
        if (!Files.exists(snapshot)) {
            fail("no committed snapshot " + snapshot.toAbsolutePath() + "; create it with -Danneal.snapshot.update=true");
        }
        List<String> expected = Files.readAllLines(snapshot, StandardCharsets.UTF_8);
        if (!expected.equals(actual)) {
            List<String> removed = new ArrayList<>(expected);
            removed.removeAll(actual);
            List<String> added = new ArrayList<>(actual);
            added.removeAll(expected);
            fail("the API changed against the committed snapshot " + snapshot + ".\n"
                    + "Removed or changed (may break plugins):\n  - " + String.join("\n  - ", removed) + "\n"
                    + "Added:\n  + " + String.join("\n  + ", added) + "\n"
                    + "If this is deliberate, update the snapshot (mvn -pl distribution test -Dtest=ApiSnapshotTest "
                    + "-Danneal.snapshot.update=true), commit it with the change, and bump the API version in "
                    + "platform-api/src/main/resources/io/anneal/api/api-version.properties if a stable type broke.");
        }
    }
}
