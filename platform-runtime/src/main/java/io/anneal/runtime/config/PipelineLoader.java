package io.anneal.runtime.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigSyntax;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueFactory;
import io.anneal.api.InputException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a pipeline file (HOCON, includes resolved relative to it) over the site settings of
 * {@code $ANNEAL_HOME/conf/anneal.conf}, with {@code --set path=value} overrides on top. An
 * override may address list items by index: {@code --set stages[0].data.sources[1].path=x.jsonl}.
 */
public final class PipelineLoader {
    /** One step of an override path: {@code .key}, {@code ."quoted.key"} or {@code [index]} (no dot before the first key). */
    private static final Pattern STEP = Pattern.compile("\\.?(?:\"([^\"]*)\"|([^.\\[\\]\"]+))|\\[([0-9]+)\\]");

    private final Path siteConfig;

    /** @param siteConfig {@code $ANNEAL_HOME/conf/anneal.conf}, or {@code null} when there is no home */
    public PipelineLoader(Path siteConfig) {
        this.siteConfig = siteConfig;
    }

    public LoadedPipeline load(Path file, List<String> overrides) {
        Config config = read(file);
        if (siteConfig != null && Files.isRegularFile(siteConfig)) {
            config = config.withFallback(parse(siteConfig));
        }
        for (String override : overrides) {
            config = applyOverride(config, override);
        }
        return new LoadedPipeline(file, resolve(config, file));
    }

    /** A HOCON file as written (includes and substitutions resolved), without site settings or overrides. */
    public static Config readPlain(Path file) {
        return resolve(read(file), file);
    }

    private static Config read(Path file) {
        if (!Files.exists(file)) {
            throw new InputException(file + ": pipeline file not found");
        }
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            throw new InputException(file + ": pipeline file cannot be read (not a readable file)");
        }
        return parse(file);
    }

    private static Config resolve(Config config, Path file) {
        try {
            return config.resolve();
        } catch (com.typesafe.config.ConfigException e) {
            throw new InputException(e.getMessage(), e);
        } catch (StackOverflowError e) {
            throw tooDeep(file, e);
        }
    }

    private static Config parse(Path file) {
        checkShape(file);
        try {
            return ConfigFactory.parseFile(file.toFile(),
                    ConfigParseOptions.defaults().setAllowMissing(false).setSyntax(ConfigSyntax.CONF));
        } catch (com.typesafe.config.ConfigException e) {
            // typesafe's messages start with "file: line:"; that is the message we want
            throw new InputException(e.getMessage(), e);
        } catch (java.nio.file.InvalidPathException e) {
            // found by PipelineLoaderFuzzTest: typesafe-config lets this escape for include "a\u0000b"
            throw new InputException(file + ": an include names a path that cannot exist (" + e.getMessage() + ")", e);
        } catch (StackOverflowError e) {
            throw tooDeep(file, e);
        }
    }

    /** Deepest nesting of blocks and lists, and most keys in one path expression, that a pipeline file may hold. */
    static final int MAX_NESTING = 256;
    static final int MAX_PATH_KEYS = 256;
    /** Most {@code +=} in one file: resolving n of them costs memory quadratic in n (200 took 71 MB). */
    static final int MAX_APPENDS = 64;
    /**
     * Most {@code ${...}} substitutions in one file: a key set n times to a substitution stacks n
     * delayed merges that resolve() walks quadratically (found by PipelineLoaderFuzzTest's long run:
     * 1,700 lines of {@code a = ${b}}, 15 KB, allocated 301 MB).
     */
    static final int MAX_SUBSTITUTIONS = 256;

    /**
     * A lexical look at the file before typesafe-config parses it: the parser recurses per level of
     * nesting (lightbend/config#777, #779) and handles a path expression of n keys in time and memory
     * quadratic in n (#778; found by PipelineLoaderFuzzTest: 18,000 keys allocated 134 MB), so nesting
     * deeper than {@value #MAX_NESTING}, more than {@value #MAX_APPENDS} {@code +=} or
     * {@value #MAX_SUBSTITUTIONS} substitutions, a path of more than
     * {@value #MAX_PATH_KEYS} keys, or a value of more than {@value #MAX_CONCATENATED} words, quoted strings,
     * lists and blocks joined is refused first, naming the line. Quoted strings and comments are skipped.
     */
    private static void checkShape(Path file) {
        String text;
        try {
            // lenient decoding: bytes that are not UTF-8 become U+FFFD here, and typesafe-config reads them the same way
            text = new String(Files.readAllBytes(file), java.nio.charset.StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            throw new InputException(file + ": pipeline file cannot be read (" + e.getMessage() + ")", e);
        }
        int depth = 0;
        int line = 1;
        int keys = 0;
        int appends = 0;
        int substitutions = 0;
        boolean inKey = false;
        int words = 0;
        boolean inWord = false;
        // the pieces counted so far in the value around each open block or list
        int[] enclosingWords = new int[MAX_NESTING];
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"') {
                // a quoted string is one more piece of the value even when it touches the text before or after it:
                // "a"b"c" joins three (found by the long fuzz run: 11,800 pieces of l"l"l"..., 50 KB on one line,
                // allocated 395 MB)
                if (++words > MAX_CONCATENATED) {
                    throw tooManyWords(file, line);
                }
                inWord = false;
                boolean triple = text.startsWith("\"\"\"", i);
                int end = triple ? text.indexOf("\"\"\"", i + 3) : i + 1;
                while (!triple && end < text.length() && text.charAt(end) != '"' && text.charAt(end) != '\n') {
                    if (text.startsWith("\\u", end)) {
                        checkUnicodeEscape(file, line, text, end);
                    }
                    end += text.charAt(end) == '\\' ? 2 : 1;
                }
                if (!triple && end < text.length() && text.charAt(end) == '\n') {
                    end--; // an unterminated string: the newline is read as one
                }
                end = end < 0 ? text.length() : Math.min(text.length(), end + (triple ? 2 : 0));
                for (int j = i; j < end; j++) {
                    line += text.charAt(j) == '\n' ? 1 : 0;
                }
                i = end;
                continue; // a quoted key still counts as one key of a path: inKey stays as it is
            }
            if (c == '#' || (c == '/' && text.startsWith("//", i))) {
                int end = text.indexOf('\n', i);
                i = (end < 0 ? text.length() : end) - 1;
                continue;
            }
            if (c == '{' || c == '[') {
                // a block or list is one more piece of the value it stands in ([1] [2] joins two lists; ${a} is one piece
                // with its $), and its own values count from 0 until it closes
                if (!inWord && ++words > MAX_CONCATENATED) {
                    throw tooManyWords(file, line);
                }
                if (depth < MAX_NESTING) {
                    enclosingWords[depth] = words;
                }
                words = 0;
                inWord = false;
            } else if (c == '}' || c == ']') {
                words = depth > 0 && depth <= MAX_NESTING ? enclosingWords[depth - 1] : 0;
                inWord = false;
            } else if ("=:,".indexOf(c) >= 0 || c == '\n') {
                words = 0;
                inWord = false;
            } else if (Character.isWhitespace(c)) {
                inWord = false;
            } else if (!inWord) {
                inWord = true;
                if (++words > MAX_CONCATENATED) {
                    throw tooManyWords(file, line);
                }
            }
            if (c == '+' && text.startsWith("+=", i) && ++appends > MAX_APPENDS) {
                // each += of a key nests one more concatenation that resolve() recurses through (lightbend/config#729;
                // found by PipelineLoaderFuzzTest: 1,000 of them took over 5 s before the stack ran out, 200 allocated 71 MB)
                throw new InputException(file + ":" + line + ": expected at most " + MAX_APPENDS + " += in a file (each nests "
                        + "one more concatenation to resolve), found more; write the list out instead");
            }
            if (c == '$' && text.startsWith("${", i) && ++substitutions > MAX_SUBSTITUTIONS) {
                throw new InputException(file + ":" + line + ": expected at most " + MAX_SUBSTITUTIONS + " ${...} substitutions "
                        + "in a file (resolving them costs memory quadratic in their number), found more");
            }
            if (c == '{' || c == '[') {
                if (++depth > MAX_NESTING) {
                    throw new InputException(file + ":" + line + ": expected blocks, lists and += nested at most a few hundred deep ("
                            + MAX_NESTING + "), found nesting too deep to read");
                }
            } else if (c == '}' || c == ']') {
                depth = Math.max(0, depth - 1);
            }
            if (c == '.' && inKey) {
                if (++keys > MAX_PATH_KEYS) {
                    throw new InputException(file + ":" + line + ": expected a key path of at most " + MAX_PATH_KEYS
                            + " keys (a.b.c has 3), found a longer one");
                }
            } else if (Character.isWhitespace(c) || "{}[]=:,+$".indexOf(c) >= 0) {
                // what ends a path expression; ( and ) do not (found by the long fuzz run: a.).a.).a.)... of 7,200 keys
                // allocated 201 MB when the count restarted at each parenthesis)
                inKey = false;
                keys = 0;
            } else {
                inKey = true;
            }
            if (c == '\n') {
                line++;
            }
        }
    }

    /**
     * A {@code \\u} escape in a quoted string takes 4 hex digits. typesafe-config reads them with
     * {@code Integer.parseInt(digits, 16)}, which takes a sign: {@code "\\u-922"} is the code point -2338,
     * and an IllegalArgumentException escaped its tokenizer (found by the long fuzz run at 619,556 executions).
     */
    private static void checkUnicodeEscape(Path file, int line, String text, int at) {
        int end = Math.min(text.length(), at + 6);
        boolean hex = end == at + 6;
        for (int i = at + 2; i < end; i++) {
            hex &= "0123456789abcdefABCDEF".indexOf(text.charAt(i)) >= 0;
        }
        if (!hex) {
            String found = text.substring(at, end).replaceAll("[\\x00-\\x1f\"]", "?");
            throw new InputException(file + ":" + line + ": expected 4 hex digits after \\u in a quoted string, found '" + found + "'");
        }
    }

    /**
     * The most pieces one value may join: unquoted words, quoted strings (each one, touching or not: {@code "a"b"c"} is
     * three), lists and blocks ({@code [1][2]} is two). typesafe-config's concatenation is quadratic in them: it
     * joins them pairwise into a new string, list or block each time.
     */
    static final int MAX_CONCATENATED = 256;

    private static InputException tooManyWords(Path file, int line) {
        // found by PipelineLoaderFuzzTest: a value of 4,000 words ("name = rsqr rsqr ...", 20 KB) allocated 326 MB;
        // in the long run, 11,800 touching pieces (path = "data/units.jsonl"l"l"l"..., 50 KB) allocated 395 MB, and
        // 10,000 lists [1][1]... (30 KB) allocate 412 MB
        return new InputException(file + ":" + line + ": expected a value of at most " + MAX_CONCATENATED
                + " words on one line (HOCON joins them, and the quoted strings, lists and blocks between them, into one value), "
                + "found more; quote the text or use a list");
    }

    /** The parser recurses per nesting level (and per {@code +=} of one key): deep input exhausts the stack. */
    private static InputException tooDeep(Path file, StackOverflowError e) {
        return new InputException(file + ": expected blocks, lists and += nested at most a few hundred deep, "
                + "found nesting too deep to read", e);
    }

    /**
     * Applies {@code path=value}; the value is HOCON ({@code 1e-5}, {@code 50M}, {@code [1, 2]}, {@code "text"}).
     * The path may index lists, {@code stages[0].data.sources[1].path} or {@code stages.0.data.sources.1.path}.
     */
    static Config applyOverride(Config config, String override) {
        int eq = override.indexOf('=');
        if (eq <= 0) {
            throw new InputException("--set " + override + ": expected path=value, e.g. --set pipeline.seed=7");
        }
        String path = override.substring(0, eq).trim();
        String valueText = override.substring(eq + 1).trim();
        ConfigParseOptions options = ConfigParseOptions.defaults().setOriginDescription(Origins.OVERRIDE_PREFIX + override);
        ConfigValue value;
        try {
            value = ConfigFactory.parseString("v = " + (valueText.isEmpty() ? "\"\"" : valueText), options).getValue("v");
        } catch (com.typesafe.config.ConfigException e) {
            throw new InputException("--set " + override + ": the value is not valid HOCON: " + e.getMessage(), e);
        }
        List<String> segments = segments(path, override);
        try {
            return ((ConfigObject) set(config.root(), segments, 0, value, override)).toConfig();
        } catch (com.typesafe.config.ConfigException.NotResolved e) {
            // the path runs through a value built by a substitution (stages = ${stages} [ ... ] after an
            // include): resolve the file first, then replace the resolved value (substitutions elsewhere
            // keep what they read from the file)
            try {
                Config resolved = config.resolve();
                return ((ConfigObject) set(resolved.root(), segments(path, override), 0, value, override)).toConfig();
            } catch (com.typesafe.config.ConfigException r) {
                throw new InputException("--set " + override + ": " + r.getMessage(), r);
            }
        } catch (com.typesafe.config.ConfigException e) {
            throw new InputException("--set " + override + ": " + e.getMessage(), e);
        }
    }

    /** Splits {@code a.b[1]."c.d"} into {@code a}, {@code b}, {@code [1]}, {@code c.d}; list indices keep their brackets. */
    private static List<String> segments(String path, String override) {
        List<String> out = new ArrayList<>();
        Matcher m = STEP.matcher(path);
        for (int at = 0; at < path.length(); at = m.end()) {
            m.region(at, path.length());
            boolean ok = m.lookingAt() && (m.group(3) != null ? at > 0 : m.group(0).startsWith(".") == (at > 0));
            if (!ok) {
                throw new InputException("--set " + override + ": expected a path such as pipeline.seed or "
                        + "stages[0].data.sources[1].path, found '" + path + "'");
            }
            out.add(m.group(3) != null ? "[" + m.group(3) + "]" : m.group(1) != null ? m.group(1) : m.group(2));
        }
        if (out.isEmpty()) {
            throw new InputException("--set " + override + ": expected path=value, e.g. --set pipeline.seed=7");
        }
        return out;
    }

    /** {@code current} with the value at {@code segments[i..]} replaced; missing blocks are created. */
    private static ConfigValue set(ConfigValue current, List<String> segments, int i, ConfigValue value, String override) {
        if (i == segments.size()) {
            return value;
        }
        String segment = segments.get(i);
        String here = String.join(".", segments.subList(0, i)).replace(".[", "[");
        boolean indexed = segment.startsWith("[") || (current instanceof ConfigList && segment.matches("[0-9]+"));
        if (indexed) {
            String digits = segment.replaceAll("[\\[\\]]", "");
            if (!(current instanceof ConfigList list)) {
                throw new InputException("--set " + override + ": " + here + " is not a list"
                        + (current == null ? " (it is not set)" : ", found " + HoconConfigView.describe(current)));
            }
            int index = digits.length() > 9 ? Integer.MAX_VALUE : Integer.parseInt(digits);
            if (index >= list.size()) {
                throw new InputException("--set " + override + ": " + here + " has no element at index " + digits
                        + " (it has " + list.size() + (list.isEmpty() ? "" : ", indices 0 to " + (list.size() - 1)) + ")");
            }
            segments.set(i, "[" + digits + "]"); // messages below name it stages[0], as written or not
            List<ConfigValue> elements = new ArrayList<>(list);
            elements.set(index, set(list.get(index), segments, i + 1, value, override));
            return ConfigValueFactory.fromIterable(elements);
        }
        if (current == null) {
            current = ConfigFactory.empty().root();
        }
        if (!(current instanceof ConfigObject object)) {
            throw new InputException("--set " + override + ": " + here + " is not a block, found "
                    + HoconConfigView.describe(current));
        }
        return object.withValue(segment, set(object.get(segment), segments, i + 1, value, override));
    }
}
