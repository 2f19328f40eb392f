package io.anneal.runtime.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigRenderOptions;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.api.config.Origin;
import io.anneal.api.units.TokenCount;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * {@link ConfigView} over a typesafe-config block. Every getter failure is a {@link ConfigException}
 * naming the file and line (or override, or plugin default), the full path, what was expected and
 * what was found.
 */
public final class HoconConfigView implements ConfigView {
    private final Config config;
    private final String path;
    private final Origin blockOrigin;

    /**
     * @param config the block (user values over defaults)
     * @param path   its full path in the pipeline, e.g. {@code stages[0].schedule}; empty for the root
     */
    public HoconConfigView(Config config, String path) {
        this.config = config;
        this.path = path;
        this.blockOrigin = Origins.of(config.origin());
    }

    /** The underlying config, for the runtime's own use (validation, printing). */
    public Config config() {
        return config;
    }

    /** Joins a block path and a key: {@code stages[0]} + {@code schedule} = {@code stages[0].schedule}. */
    public static String join(String path, String key) {
        return path == null || path.isEmpty() ? key : key.isEmpty() ? path : path + "." + key;
    }

    @Override
    public String path() {
        return path;
    }

    @Override
    public boolean has(String key) {
        return config.hasPath(key);
    }

    @Override
    public Set<String> keys() {
        return config.root().keySet();
    }

    @Override
    public String getString(String key) {
        return get(key, "a string", config::getString);
    }

    @Override
    public double getDouble(String key) {
        return get(key, "a number", config::getDouble);
    }

    @Override
    public long getLong(String key) {
        return get(key, "a whole number", k -> whole(k, Long.MIN_VALUE, Long.MAX_VALUE));
    }

    @Override
    public int getInt(String key) {
        return get(key, "a whole number that fits in 32 bits", k -> (int) whole(k, Integer.MIN_VALUE, Integer.MAX_VALUE));
    }

    /** The number at {@code key} when it is whole and within [min, max]: 2.5 and 1e999 are refused, not cut. */
    private long whole(String key, long min, long max) {
        ConfigValue value = config.getValue(key);
        if (value.valueType() == ConfigValueType.NUMBER || value.valueType() == ConfigValueType.STRING) {
            try {
                long n = new java.math.BigDecimal(String.valueOf(value.unwrapped()).trim()).longValueExact();
                if (n >= min && n <= max) {
                    return n;
                }
            } catch (NumberFormatException | ArithmeticException e) {
                // not a whole number in range: reported below
            }
        }
        throw new com.typesafe.config.ConfigException.BadValue(key, "not a whole number in range");
    }

    @Override
    public boolean getBoolean(String key) {
        return get(key, "true or false", config::getBoolean);
    }

    @Override
    public TokenCount getTokens(String key) {
        String expected = "a token count such as 50M, 1.5G or 256K";
        return get(key, expected, k -> tokens(config.getValue(k)).orElseThrow(() -> invalid(key, expected)));
    }

    /** A token count from a number or a string with units; empty when the value is neither. */
    static java.util.Optional<TokenCount> tokens(ConfigValue value) {
        Object raw = value.unwrapped();
        if (value.valueType() == ConfigValueType.NUMBER) {
            double d = ((Number) raw).doubleValue();
            if (d >= 0 && d == Math.rint(d) && d < Long.MAX_VALUE) {
                return java.util.Optional.of(TokenCount.of(((Number) raw).longValue()));
            }
            return java.util.Optional.empty();
        }
        if (value.valueType() == ConfigValueType.STRING) {
            try {
                return java.util.Optional.of(TokenCount.parse((String) raw));
            } catch (IllegalArgumentException e) {
                return java.util.Optional.empty();
            }
        }
        return java.util.Optional.empty();
    }

    @Override
    public List<String> getStringList(String key) {
        return get(key, "a list of strings", config::getStringList);
    }

    @Override
    public List<Double> getDoubleList(String key) {
        return get(key, "a list of numbers", config::getDoubleList);
    }

    @Override
    public ConfigView getConfig(String key) {
        return get(key, "a block { ... }", k -> new HoconConfigView(config.getConfig(k), join(path, k)));
    }

    @Override
    public List<ConfigView> getConfigList(String key) {
        return get(key, "a list of blocks [ { ... }, ... ]", k -> {
            List<? extends Config> blocks = config.getConfigList(k);
            List<ConfigView> out = new ArrayList<>();
            for (int i = 0; i < blocks.size(); i++) {
                out.add(new HoconConfigView(blocks.get(i), join(path, k) + "[" + i + "]"));
            }
            return out;
        });
    }

    @Override
    public Map<String, Object> unwrapped() {
        return config.root().unwrapped();
    }

    @Override
    public Origin origin(String key) {
        if (key == null || key.isEmpty() || !config.hasPathOrNull(key)) {
            return blockOrigin;
        }
        return Origins.of(config.getValue(key).origin());
    }

    @Override
    public ConfigException invalid(String key, String expected) {
        return invalid(key, expected, found(key));
    }

    @Override
    public ConfigException invalid(String key, String expected, String found) {
        return new ConfigException(new ConfigProblem(origin(key), join(path, key), expected, found));
    }

    private String found(String key) {
        if (!config.hasPathOrNull(key)) {
            return "nothing (the key is not set)";
        }
        if (config.getIsNull(key)) {
            return "null";
        }
        return describe(config.getValue(key));
    }

    /** A value as the user wrote it, with its kind: {@code "abc" (a string)}. */
    public static String describe(ConfigValue value) {
        String kind = switch (value.valueType()) {
            case OBJECT -> "a block";
            case LIST -> "a list";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL -> "null";
            case STRING -> "a string";
        };
        return value.render(ConfigRenderOptions.concise()) + " (" + kind + ")";
    }

    private <T> T get(String key, String expected, Function<String, T> getter) {
        if (!config.hasPathOrNull(key)) {
            throw invalid(key, expected);
        }
        try {
            return getter.apply(key);
        } catch (com.typesafe.config.ConfigException e) {
            throw invalid(key, expected);
        }
    }

    /** An empty view at {@code path}, for extensions built from code with no settings. */
    public static HoconConfigView empty(String path) {
        return new HoconConfigView(ConfigFactory.empty(), path);
    }


}
