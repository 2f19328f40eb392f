package io.anneal.runtime.plugins;

import java.io.OutputStream;
import java.io.PrintStream;

/**
 * Keeps a plugin's initialisation from ending the process: while the guard is open,
 * {@code System.exit} and {@code Runtime.halt} throw a SecurityException instead (issue 15: a plugin
 * whose constructor called {@code System.exit(3)} killed the host with no output).
 *
 * <p>What the JDK allows: only a SecurityManager can intercept an exit. JDK 17 still lets a program
 * install one at run time (deprecated for removal by JEP 411: it prints a warning, which the guard
 * keeps off the console); JDK 18 and later refuse it unless started with
 * {@code -Djava.security.manager=allow}, and JDK 24 removed it (JEP 486). Where it cannot be installed
 * the guard does nothing, and an exit during initialisation is only named afterwards by the shutdown
 * hook of {@link #nameTheExit}. An exit from a thread the plugin started, after its initialisation,
 * is not guarded.
 */
@SuppressWarnings("removal")
final class ExitGuard implements AutoCloseable {
    private static volatile String initialising;
    private static final Thread NAMER = new Thread(() -> {
        String who = initialising;
        if (who != null) {
            System.err.println("anneal: " + who + " ended the process (System.exit or Runtime.halt) while it initialised; "
                    + "remove it from the plugin folder");
        }
    }, "anneal-exit-namer");
    private final SecurityManager previous;
    private final boolean installed;

    private ExitGuard(String who) {
        initialising = who;
        previous = System.getSecurityManager();
        boolean ok;
        PrintStream err = System.err;
        try {
            // JDK 17 warns once per caller on the console; the warning is about this guard, not the user's input
            System.setErr(new PrintStream(OutputStream.nullOutputStream()));
            System.setSecurityManager(new SecurityManager() {
                @Override
                public void checkPermission(java.security.Permission permission) {
                    // everything else stays allowed
                }

                @Override
                public void checkPermission(java.security.Permission permission, Object context) {
                }

                @Override
                public void checkExit(int status) {
                    throw new SecurityException("the plugin called System.exit(" + status + ") (or Runtime.halt) while it "
                            + "initialised; a plugin must never end the process");
                }
            });
            ok = true;
        } catch (UnsupportedOperationException | SecurityException e) {
            ok = false; // JDK 18+ without -Djava.security.manager=allow: the shutdown hook names the plugin instead
        } finally {
            System.setErr(err);
        }
        installed = ok;
    }

    /** Guards the initialisation of {@code who} (as "plugin jar X") until closed. */
    static ExitGuard open(String who) {
        return new ExitGuard(who);
    }

    /** Once per JVM: a shutdown hook that names the plugin initialising when the process ends, if one is. */
    static void nameTheExit() {
        try {
            Runtime.getRuntime().addShutdownHook(NAMER);
        } catch (IllegalArgumentException | IllegalStateException e) {
            // already added, or the JVM is shutting down
        }
    }

    boolean installed() {
        return installed;
    }

    @Override
    public void close() {
        if (installed) {
            // the same JDK 17 warning again on the way out: it would reach every command's console
            PrintStream err = System.err;
            try {
                System.setErr(new PrintStream(OutputStream.nullOutputStream()));
                System.setSecurityManager(previous);
            } finally {
                System.setErr(err);
            }
        }
        initialising = null;
    }
}
