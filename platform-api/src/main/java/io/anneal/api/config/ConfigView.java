package io.anneal.api.config;

import io.anneal.api.Stable;
import io.anneal.api.units.TokenCount;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A read-only view of one configuration block, with the plugin's defaults already under it.
 * Getters of a missing key or a value of the wrong type throw a {@link ConfigException} that
 * names the file, line and full path. Keys are relative to this block.
 */
@Stable(since = "1.0")
public interface ConfigView {

    /** The full path of this block, e.g. {@code stages[0].schedule}; empty for the root. */
    String path();

    boolean has(String key);

    /** The keys directly under this block. */
    Set<String> keys();

    String getString(String key);

    double getDouble(String key);

    long getLong(String key);

    int getInt(String key);

    boolean getBoolean(String key);

    /** A token count written with units ({@code 50M}, {@code 1.5G}, {@code 256K}) or as a plain number. */
    TokenCount getTokens(String key);

    List<String> getStringList(String key);

    List<Double> getDoubleList(String key);

    ConfigView getConfig(String key);

    List<ConfigView> getConfigList(String key);

    /** This block as plain Java values (maps, lists, strings, numbers, booleans). */
    Map<String, Object> unwrapped();

    /** Where the value at {@code key} (or this block, for an empty key) was set. */
    Origin origin(String key);

    /**
     * A problem at {@code key}: throw the result. The found value is rendered from the config.
     * Example: {@code throw config.invalid("min-lr-ratio", "a ratio in (0, 1]")}.
     */
    ConfigException invalid(String key, String expected);

    /** A problem at {@code key} with an explicit description of what was found. */
    ConfigException invalid(String key, String expected, String found);

    /**
     * The value at {@code key} as a constant of {@code type}, by its {@link #configName}; case and
     * surrounding spaces do not matter. Any other value is an {@link #invalid} error listing the choices.
     */
    default <E extends Enum<E>> E getEnum(String key, Class<E> type) {
        String value = getString(key).trim().toLowerCase(Locale.ROOT);
        for (E constant : type.getEnumConstants()) {
            if (configName(constant).equals(value)) {
                return constant;
            }
        }
        throw invalid(key, "one of " + Stream.of(type.getEnumConstants()).map(ConfigView::configName)
                .collect(Collectors.joining(", ")));
    }

    /** How configuration writes an enum constant: lower case, '-' for '_' ({@code LAST_ASSISTANT} is {@code last-assistant}). */
    static String configName(Enum<?> constant) {
        return constant.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }
}
