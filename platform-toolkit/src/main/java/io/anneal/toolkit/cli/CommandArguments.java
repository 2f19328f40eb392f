package io.anneal.toolkit.cli;

import io.anneal.api.Experimental;
import io.anneal.api.InputException;
import io.anneal.api.units.TokenCount;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The one way a command parses its arguments: {@code --name value} or {@code --name=value} options
 * from a fixed set, boolean {@code --switches}, positionals, and {@code --help}/{@code -h}. Every
 * mistake is an {@link InputException} that names the command and the option, says what was
 * expected and what was found, and ends with the usage line.
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.cli before API 1.2 split it off); the option kinds may grow")
public final class CommandArguments {
    private final String command;
    private final String usage;
    private final List<String> positionals = new ArrayList<>();
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Set<String> switchesGiven = new java.util.HashSet<>();
    private final boolean help;

    private CommandArguments(String command, String usage, List<String> args, Set<String> options, Set<String> switches) {
        this.command = command;
        this.usage = usage;
        boolean wantsHelp = false;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--help") || a.equals("-h")) {
                wantsHelp = true;
            } else if (a.startsWith("--") && a.length() > 2) {
                int eq = a.indexOf('=');
                String name = eq < 0 ? a.substring(2) : a.substring(2, eq);
                if (switches.contains(name)) {
                    if (eq >= 0) {
                        throw error("--" + name + " takes no value, found '" + a + "'");
                    }
                    switchesGiven.add(name);
                } else if (options.contains(name)) {
                    if (eq >= 0) {
                        values.put(name, a.substring(eq + 1));
                    } else if (i + 1 < args.size()) {
                        values.put(name, args.get(++i));
                    } else {
                        throw error("--" + name + " needs a value");
                    }
                } else {
                    List<String> known = new ArrayList<>(options);
                    known.addAll(switches);
                    Collections.sort(known);
                    throw error("unknown option --" + name + " (known: " + (known.isEmpty() ? "none"
                            : "--" + String.join(", --", known)) + ")");
                }
            } else {
                positionals.add(a);
            }
        }
        help = wantsHelp;
    }

    /**
     * @param command  how the user typed the command, for messages ({@code "anneal plot"})
     * @param usage    the usage line, appended to every error
     * @param args     the arguments after the command word
     * @param options  names (without {@code --}) of the options that take a value
     * @param switches names of the options that take none
     */
    public static CommandArguments parse(String command, String usage, List<String> args, Set<String> options,
            Set<String> switches) {
        return new CommandArguments(command, usage, args, options, switches);
    }

    /** {@link #parse(String, String, List, Set, Set)} without switches. */
    public static CommandArguments parse(String command, String usage, List<String> args, String... options) {
        return new CommandArguments(command, usage, args, Set.of(options), Set.of());
    }

    /** True when {@code --help} or {@code -h} was given: print the usage and return 0. */
    public boolean help() {
        return help;
    }

    public String usage() {
        return usage;
    }

    /** A bad-input error naming the command, with the usage line. */
    public InputException error(String message) {
        return new InputException(command + ": " + message + "\n" + usage);
    }

    public List<String> positionals() {
        return List.copyOf(positionals);
    }

    /** Exactly one positional, described as {@code what} in the error otherwise ("the pipeline file"). */
    public String onePositional(String what) {
        if (positionals.size() != 1) {
            throw error("expected " + what + ", found " + (positionals.isEmpty() ? "none" : positionals.size()
                    + " positional arguments " + positionals));
        }
        return positionals.get(0);
    }

    /** No positional may be given. */
    public void noPositionals() {
        if (!positionals.isEmpty()) {
            throw error("unexpected arguments " + positionals);
        }
    }

    public boolean has(String option) {
        return values.containsKey(option) || switchesGiven.contains(option);
    }

    public boolean isSet(String aSwitch) {
        return switchesGiven.contains(aSwitch);
    }

    public Optional<String> value(String option) {
        return Optional.ofNullable(values.get(option));
    }

    public String value(String option, String otherwise) {
        return values.getOrDefault(option, otherwise);
    }

    public String required(String option) {
        String v = values.get(option);
        if (v == null) {
            throw error("--" + option + " is missing");
        }
        return v;
    }

    /** One of {@code allowed}, or {@code otherwise} when absent. */
    public String choice(String option, String otherwise, String... allowed) {
        String v = value(option, otherwise);
        if (!Arrays.asList(allowed).contains(v)) {
            throw error("--" + option + ": expected one of " + String.join(", ", allowed) + ", found '" + v + "'");
        }
        return v;
    }

    public int positiveInt(String option, int otherwise) {
        String v = values.get(option);
        if (v == null) {
            return otherwise;
        }
        try {
            int n = Integer.parseInt(v.trim());
            if (n > 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw error("--" + option + ": expected a positive integer, found '" + v + "'");
    }

    public double positiveNumber(String option, double otherwise) {
        String v = values.get(option);
        if (v == null) {
            return otherwise;
        }
        try {
            double d = Double.parseDouble(v.trim());
            if (d > 0 && !Double.isInfinite(d)) {
                return d;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw error("--" + option + ": expected a positive number, found '" + v + "'");
    }

    /** A positive token count such as {@code 4M} or {@code 1.5G} ({@link TokenCount}). */
    public long tokens(String option, long otherwise) {
        String v = values.get(option);
        return v == null ? otherwise : positiveTokens(option, v);
    }

    /** A required comma-separated list of positive token counts. */
    public List<Long> tokenList(String option) {
        List<Long> out = new ArrayList<>();
        for (String part : required(option).split(",")) {
            out.add(positiveTokens(option, part.trim()));
        }
        return out;
    }

    /** A comma-separated list of names; {@code otherwise} when absent. */
    public List<String> list(String option, List<String> otherwise) {
        String v = values.get(option);
        if (v == null) {
            return otherwise;
        }
        List<String> out = new ArrayList<>();
        for (String part : v.split(",")) {
            if (!part.isBlank()) {
                out.add(part.trim());
            }
        }
        if (out.isEmpty()) {
            throw error("--" + option + ": expected a comma-separated list, found '" + v + "'");
        }
        return out;
    }

    private long positiveTokens(String option, String v) {
        long t;
        try {
            t = TokenCount.parse(v).tokens();
        } catch (IllegalArgumentException e) {
            throw error("--" + option + ": " + e.getMessage());
        }
        if (t <= 0) {
            throw error("--" + option + ": expected a positive token count, found '" + v + "'");
        }
        return t;
    }
}
