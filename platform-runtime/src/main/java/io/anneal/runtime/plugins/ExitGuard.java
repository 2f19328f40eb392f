package io.anneal.runtime.plugins;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.Enumeration;
import java.util.Optional;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * Keeps a plugin from ending the process (issue 15: a plugin whose constructor called
 * {@code System.exit(3)} killed the host with no output), in two parts:
 * <ul>
 *   <li>before any of its code runs, the classes of the plugin's own jar (the one that provides
 *       {@code io.anneal.api.plugin.Plugin}) are read for calls to {@code System.exit},
 *       {@code Runtime.exit} or {@code Runtime.halt} ({@link #exitCallIn}); a plugin that has one is
 *       refused, naming the class;</li>
 *   <li>an exit that gets past that (through a library, reflection or a method handle) while a plugin
 *       initialises is named by a shutdown hook, and the process ends with exit code 2 (bad input:
 *       the plugin folder), not with the plugin's code (3 would read as non-finite training).</li>
 * </ul>
 * What the JDK allows: only a SecurityManager can intercept an exit and let the process go on.
 * JDK 17 still lets a program install one, but prints a four-line deprecation warning on the
 * original standard error that no program can silence (JEP 411), on every run; JDK 18+ refuse it
 * unless started with {@code -Djava.security.manager=allow}, and JDK 24 removed it (JEP 486). So the
 * runtime does not install one.
 */
final class ExitGuard implements AutoCloseable {
    private static volatile String initialising;
    private static final Thread NAMER = new Thread(() -> {
        String who = initialising;
        if (who != null) {
            System.err.println("anneal: " + who + " ended the process (System.exit or Runtime.halt) while it initialised; "
                    + "remove it from the plugin folder");
            System.err.flush();
            Runtime.getRuntime().halt(2);
        }
    }, "anneal-exit-namer");

    private ExitGuard(String who) {
        initialising = who;
    }

    /** Names {@code who} (as "plugin X (jar)") if the process ends before {@link #close}. */
    static ExitGuard open(String who) {
        return new ExitGuard(who);
    }

    /** Once per JVM: the shutdown hook that names the plugin initialising when the process ends, if one is. */
    static void nameTheExit() {
        try {
            Runtime.getRuntime().addShutdownHook(NAMER);
        } catch (IllegalArgumentException | IllegalStateException e) {
            // already added, or the JVM is shutting down
        }
    }

    @Override
    public void close() {
        initialising = null;
    }

    /** The first class of {@code jar} that calls System.exit, Runtime.exit or Runtime.halt, as "a/B.class calls java.lang.System.exit". */
    static Optional<String> exitCallIn(Path jar) throws IOException {
        try (JarFile file = new JarFile(jar.toFile())) {
            for (Enumeration<JarEntry> e = file.entries(); e.hasMoreElements(); ) {
                JarEntry entry = e.nextElement();
                if (!entry.getName().endsWith(".class")) {
                    continue;
                }
                try (InputStream in = file.getInputStream(entry)) {
                    Optional<String> call = exitCall(new DataInputStream(in));
                    if (call.isPresent()) {
                        return Optional.of(entry.getName() + " calls " + call.get());
                    }
                }
            }
        }
        return Optional.empty();
    }

    /**
     * Reads a class file's constant pool (JVMS 4.4) for a method reference to java/lang/System.exit,
     * java/lang/Runtime.exit or java/lang/Runtime.halt; a class file that does not parse has none.
     */
    static Optional<String> exitCall(DataInputStream in) throws IOException {
        if (in.readInt() != 0xCAFEBABE) {
            return Optional.empty();
        }
        in.readUnsignedShort();
        in.readUnsignedShort();
        int count = in.readUnsignedShort();
        String[] utf8 = new String[count];
        int[] classNames = new int[count];
        int[][] refs = new int[count][];
        int[][] nameAndTypes = new int[count][];
        for (int i = 1; i < count; i++) {
            int tag = in.readUnsignedByte();
            switch (tag) {
                case 1 -> utf8[i] = in.readUTF();
                case 3, 4 -> in.readInt();
                case 5, 6 -> {
                    in.readLong();
                    i++; // takes two entries
                }
                case 7 -> classNames[i] = in.readUnsignedShort();
                case 8, 16, 19, 20 -> in.readUnsignedShort();
                case 9, 11, 17, 18 -> in.readInt();
                case 10 -> refs[i] = new int[] {in.readUnsignedShort(), in.readUnsignedShort()};
                case 12 -> nameAndTypes[i] = new int[] {in.readUnsignedShort(), in.readUnsignedShort()};
                case 15 -> {
                    in.readUnsignedByte();
                    in.readUnsignedShort();
                }
                default -> {
                    return Optional.empty(); // not a class file this reader knows
                }
            }
        }
        for (int[] ref : refs) {
            if (ref == null || ref[0] >= count || ref[1] >= count || nameAndTypes[ref[1]] == null) {
                continue;
            }
            String owner = classNames[ref[0]] < count ? utf8[classNames[ref[0]]] : null;
            String name = utf8[nameAndTypes[ref[1]][0]];
            if (("java/lang/System".equals(owner) && "exit".equals(name))
                    || ("java/lang/Runtime".equals(owner) && ("exit".equals(name) || "halt".equals(name)))) {
                return Optional.of(owner.replace('/', '.') + "." + name);
            }
        }
        return Optional.empty();
    }
}
