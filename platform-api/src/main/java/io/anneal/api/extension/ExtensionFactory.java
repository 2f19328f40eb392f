package io.anneal.api.extension;

import io.anneal.api.Stable;
import io.anneal.api.config.ConfigView;

/**
 * Builds one kind of extension from its HOCON block. The block's {@code type} selects the factory:
 * {@code schedule { type = wsd, peak-lr = 128e-6, ... }} goes to the factory whose
 * {@link #extensionPoint()} is {@code LrSchedule} and whose {@link #type()} is {@code wsd}.
 *
 * <p>The defaults of every key live in the plugin's {@code reference.conf} under
 * {@link #defaultsPath()}. Before anything runs, the runtime rejects keys that are not there (with
 * a "did you mean" suggestion) and values whose type differs from the default's; {@link #create}
 * then checks meaning (ranges, relations) and reports problems through
 * {@link ConfigView#invalid}.
 *
 * @param <T> the extension point, e.g. {@link io.anneal.api.schedule.LrSchedule}
 */
@Stable(since = "1.0")
public interface ExtensionFactory<T> {

    /** The extension point this factory builds. */
    Class<T> extensionPoint();

    /** The name used as {@code type = ...} in HOCON. Unique per extension point across all plugins. */
    String type();

    /** A one-line description for {@code anneal plugins}. */
    default String description() {
        return "";
    }

    /**
     * Where the defaults of this type live in the plugin's {@code reference.conf}; by convention
     * {@code anneal.<extension point key>.<type>}, e.g. {@code anneal.schedule.wsd}. An empty
     * string means the block takes no keys besides {@code type}.
     */
    default String defaultsPath() {
        return "anneal." + ExtensionPoints.key(extensionPoint()) + "." + type();
    }

    /**
     * Keys of this block that hold the blocks of other extensions, with their extension points:
     * an SFT stage declares {@code schedule -> LrSchedule}, {@code optimizer -> OptimizerFactory},
     * {@code data -> TrainingData}. Validation walks into them, and the keys inside them are checked
     * against the defaults of the type they name, not this block's.
     */
    default java.util.Map<String, Class<?>> nestedExtensions() {
        return java.util.Map.of();
    }

    /**
     * For keys of {@link #nestedExtensions()} whose types come from another plugin, that plugin's id
     * (a hybrid model's {@code mup} block: {@code mup}). When that plugin is not loaded, validation
     * names it beside the unknown type, instead of only listing the types that are loaded. Since API 1.2.
     */
    default java.util.Map<String, String> nestedExtensionPlugins() {
        return java.util.Map.of();
    }

    /**
     * Builds the extension. {@code config} is the user's block over the defaults. Throw the
     * exception of {@link ConfigView#invalid} for a bad value; it names the file, line and path.
     */
    T create(ConfigView config, ExtensionContext context);

    /**
     * A factory from a function, for the common case of a type with no nested extensions and the
     * conventional defaults path: {@code ExtensionFactory.of(LrSchedule.class, "wsd", "...", Wsd::fromConfig)}.
     */
    static <T> ExtensionFactory<T> of(Class<T> point, String type, String description,
                                      java.util.function.BiFunction<ConfigView, ExtensionContext, T> create) {
        return new ExtensionFactory<>() {
            @Override
            public Class<T> extensionPoint() {
                return point;
            }

            @Override
            public String type() {
                return type;
            }

            @Override
            public String description() {
                return description;
            }

            @Override
            public T create(ConfigView config, ExtensionContext context) {
                return create.apply(config, context);
            }
        };
    }
}
