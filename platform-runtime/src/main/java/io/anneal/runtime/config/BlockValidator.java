package io.anneal.runtime.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.Origin;
import io.anneal.api.extension.ExtensionPoints;
import io.anneal.runtime.plugins.PluginRegistry;
import io.anneal.runtime.plugins.RegisteredExtension;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * Checks the shape of extension blocks against the defaults of the type they name: the
 * {@code type} must be known for the extension point, every key must have a default, every value
 * must have the default's type, and blocks under {@code nestedExtensions()} keys are checked as
 * their own extension points. It also merges each block over its defaults (nested ones too), so
 * the printed pipeline and the factories see the same values.
 */
public final class BlockValidator {
    /** A token-count default: digits with an optional unit, e.g. {@code 50M}, {@code 1.5G}, {@code 256K}. */
    private static final Pattern TOKEN_DEFAULT = Pattern.compile("(?i)\\s*[0-9][0-9_.,]*\\s*[KMGT]T?\\s*");
    private static final Set<String> BOOLEAN_WORDS = Set.of("true", "false", "yes", "no", "on", "off");

    private final PluginRegistry registry;

    public BlockValidator(PluginRegistry registry) {
        this.registry = registry;
    }

    /** The result of checking one block: its factory (when the type is known) and the merged block. */
    public record Checked(RegisteredExtension extension, Config effective, List<ConfigProblem> problems) {
        public boolean ok() {
            return problems.isEmpty();
        }
    }

    /**
     * Checks {@code value} as a block of {@code point} at {@code path}. A stage block may also hold
     * {@code name}, which the pipeline engine owns.
     */
    public Checked check(Class<?> point, ConfigValue value, String path) {
        return check(point, value, path, Optional.empty());
    }

    /** With {@code providedBy}: the plugin whose types the block usually names, said when it is not loaded. */
    private Checked check(Class<?> point, ConfigValue value, String path, Optional<String> providedBy) {
        Set<String> extraKeys = point == io.anneal.api.train.Stage.class ? Set.of("name") : Set.of();
        List<ConfigProblem> problems = new ArrayList<>();
        String pointKey = ExtensionPoints.key(point);
        if (!(value instanceof ConfigObject)) {
            problems.add(new ConfigProblem(Origins.of(value.origin()), path,
                    "a " + pointKey + " block { type = ... }", HoconConfigView.describe(value)));
            return new Checked(null, ConfigFactory.empty(), problems);
        }
        Config block = ((ConfigObject) value).toConfig();
        List<String> known = registry.types(point);
        String knownList = known.isEmpty() ? "none are loaded" : String.join(", ", known);
        if (!block.hasPath("type")) {
            problems.add(new ConfigProblem(Origins.of(value.origin()), HoconConfigView.join(path, "type"),
                    "a " + pointKey + " type (known: " + knownList + ")", "nothing (the key is not set)"));
            return new Checked(null, block, problems);
        }
        ConfigValue typeValue = block.getValue("type");
        String type = String.valueOf(typeValue.unwrapped());
        Optional<RegisteredExtension> extension = registry.extension(point, type);
        if (typeValue.valueType() != ConfigValueType.STRING || extension.isEmpty()) {
            problems.add(new ConfigProblem(Origins.of(typeValue.origin()), HoconConfigView.join(path, "type"),
                    "a " + pointKey + " type (known: " + knownList + ")",
                    "unknown type '" + type + "'" + DidYouMean.hint(type, known) + missingPlugin(providedBy)));
            return new Checked(null, block, problems);
        }
        RegisteredExtension ext = extension.get();
        Config defaults = ext.defaults();
        Map<String, Class<?>> nested = ext.factory().nestedExtensions();
        String owner = pointKey + " type '" + type + "' (plugin " + ext.plugin().id() + ")";
        Set<String> allowed = new TreeSet<>(defaults.root().keySet());
        allowed.add("type");
        allowed.addAll(extraKeys);
        allowed.addAll(nested.keySet());
        for (Map.Entry<String, ConfigValue> entry : ((ConfigObject) value).entrySet()) {
            String key = entry.getKey();
            String keyPath = HoconConfigView.join(path, quote(key));
            if (!allowed.contains(key)) {
                problems.add(unknownKey(entry.getValue(), keyPath, key, allowed, owner));
            } else if (!nested.containsKey(key) && defaults.root().containsKey(key)) {
                compare(defaults.root().get(key), entry.getValue(), keyPath, owner, problems);
            }
        }
        Config effective = block.withFallback(defaults);
        for (Map.Entry<String, Class<?>> n : nested.entrySet()) {
            if (!effective.hasPath(quote(n.getKey()))) {
                continue; // the factory decides whether a missing nested block is an error
            }
            Checked inner = check(n.getValue(), effective.getValue(quote(n.getKey())),
                    HoconConfigView.join(path, quote(n.getKey())),
                    Optional.ofNullable(ext.factory().nestedExtensionPlugins().get(n.getKey())));
            problems.addAll(inner.problems());
            if (inner.extension() != null) {
                effective = effective.withValue(quote(n.getKey()), inner.effective().root());
            }
        }
        return new Checked(ext, effective, problems);
    }

    /** ", which plugin X provides: it is not loaded (...)" when X is not loaded; empty otherwise. */
    private String missingPlugin(Optional<String> providedBy) {
        return providedBy.filter(id -> registry.plugin(id).isEmpty())
                .map(id -> "; plugin '" + id + "' provides it and is not loaded (the distribution keeps it in plugins/" + id
                        + "; 'anneal plugins' lists what is loaded)")
                .orElse("");
    }

    /**
     * Checks the keys of a plain block (such as {@code pipeline}) against its defaults; returns the
     * block over its defaults.
     */
    public Config checkPlain(ConfigValue value, Config defaults, String path, String owner, List<ConfigProblem> problems) {
        if (!(value instanceof ConfigObject)) {
            problems.add(new ConfigProblem(Origins.of(value.origin()), path, "a block { ... }", HoconConfigView.describe(value)));
            return defaults;
        }
        compare(defaults.root(), value, path, owner, problems);
        return ((ConfigObject) value).toConfig().withFallback(defaults);
    }

    private static ConfigProblem unknownKey(ConfigValue value, String keyPath, String key, Set<String> allowed, String owner) {
        return new ConfigProblem(Origins.of(value.origin()), keyPath,
                "a key of " + owner + ": " + String.join(", ", allowed),
                "unknown key '" + key + "'" + DidYouMean.hint(key, allowed));
    }

    /** Checks {@code actual} against the type of {@code expected} (a default), recursing into blocks and lists. */
    private void compare(ConfigValue expected, ConfigValue actual, String path, String owner, List<ConfigProblem> problems) {
        Origin origin = Origins.of(actual.origin());
        switch (expected.valueType()) {
            case NULL -> {
                // a null default takes any value
            }
            case OBJECT -> {
                if (!(actual instanceof ConfigObject)) {
                    problems.add(new ConfigProblem(origin, path, "a block { ... }", HoconConfigView.describe(actual)));
                    return;
                }
                ConfigObject defaults = (ConfigObject) expected;
                if (defaults.isEmpty()) {
                    return; // an empty default block is a free-form map
                }
                for (Map.Entry<String, ConfigValue> e : ((ConfigObject) actual).entrySet()) {
                    String keyPath = HoconConfigView.join(path, quote(e.getKey()));
                    if (!defaults.containsKey(e.getKey())) {
                        problems.add(unknownKey(e.getValue(), keyPath, e.getKey(), new TreeSet<>(defaults.keySet()), owner));
                    } else {
                        compare(defaults.get(e.getKey()), e.getValue(), keyPath, owner, problems);
                    }
                }
            }
            case LIST -> {
                if (!(actual instanceof ConfigList)) {
                    problems.add(new ConfigProblem(origin, path, "a list [ ... ]", HoconConfigView.describe(actual)));
                    return;
                }
                ConfigList defaults = (ConfigList) expected;
                if (!defaults.isEmpty()) {
                    // A list of token counts may mix numbers (0) and units (25M): a unit element decides.
                    ConfigValue prototype = defaults.stream().filter(this::isTokenDefault).findFirst().orElse(defaults.get(0));
                    ConfigList list = (ConfigList) actual;
                    for (int i = 0; i < list.size(); i++) {
                        compare(prototype, list.get(i), path + "[" + i + "]", owner, problems);
                    }
                }
            }
            case NUMBER -> {
                boolean ok = actual.valueType() == ConfigValueType.NUMBER
                        || (actual.valueType() == ConfigValueType.STRING && isNumber((String) actual.unwrapped()));
                if (!ok) {
                    problems.add(new ConfigProblem(origin, path, "a number", HoconConfigView.describe(actual)));
                }
            }
            case BOOLEAN -> {
                boolean ok = actual.valueType() == ConfigValueType.BOOLEAN
                        || (actual.valueType() == ConfigValueType.STRING
                        && BOOLEAN_WORDS.contains(((String) actual.unwrapped()).trim().toLowerCase(java.util.Locale.ROOT)));
                if (!ok) {
                    problems.add(new ConfigProblem(origin, path, "true or false", HoconConfigView.describe(actual)));
                }
            }
            case STRING -> {
                if (isTokenDefault(expected)) {
                    if (HoconConfigView.tokens(actual).isEmpty()) {
                        problems.add(new ConfigProblem(origin, path, "a token count such as 50M, 1.5G or 256K",
                                HoconConfigView.describe(actual)));
                    }
                } else if (actual instanceof ConfigObject || actual instanceof ConfigList) {
                    problems.add(new ConfigProblem(origin, path, "a string", HoconConfigView.describe(actual)));
                }
            }
        }
    }

    private boolean isTokenDefault(ConfigValue value) {
        return value.valueType() == ConfigValueType.STRING && TOKEN_DEFAULT.matcher((String) value.unwrapped()).matches();
    }

    private static boolean isNumber(String s) {
        try {
            Double.parseDouble(s.trim());
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** Quotes a key for use in a typesafe-config path when it needs it. */
    static String quote(String key) {
        return com.typesafe.config.ConfigUtil.joinPath(key);
    }

}
