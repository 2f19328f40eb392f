package io.anneal.runtime.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.api.config.Origin;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.runtime.plugins.PluginRegistry;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@link ExtensionContext} of the runtime: builds an extension from its block through the
 * factory registered for the block's {@code type}, after checking the block against the type's
 * defaults ({@link BlockValidator}); the factory sees the user's values over the defaults.
 */
public final class ConfiguredExtensions implements ExtensionContext {
    private final PluginRegistry registry;
    private final BlockValidator validator;
    private final Path workingDirectory;
    /** The path of every block built so far, in order: validation skips nested blocks a factory built itself. */
    private final List<String> builtPaths = new ArrayList<>();
    /** Every block built so far with what its factory made, in order: the checks across blocks read them. */
    private final List<BuiltBlock> builtBlocks = new ArrayList<>();
    private volatile int threads;

    public ConfiguredExtensions(PluginRegistry registry, Path workingDirectory) {
        this.registry = registry;
        this.validator = new BlockValidator(registry);
        this.workingDirectory = workingDirectory;
    }

    /** {@code pipeline.threads} as validated, offered to factories as {@link #threads()} (set before any stage is built). */
    public void useThreads(int pipelineThreads) {
        this.threads = pipelineThreads;
    }

    @Override
    public int threads() {
        return threads;
    }

    public PluginRegistry registry() {
        return registry;
    }

    public BlockValidator validator() {
        return validator;
    }

    /** How many blocks were built (or attempted) so far. */
    /** A block built through {@link #build}: its checked view and what its factory made. */
    public record BuiltBlock(HoconConfigView view, Object built) {
    }

    /** Every block built so far, in order. */
    public synchronized List<BuiltBlock> builtBlocks() {
        return List.copyOf(builtBlocks);
    }

    public synchronized int buildCount() {
        return builtPaths.size();
    }

    /** The paths of the blocks built (or attempted) after the first {@code count} builds. */
    public synchronized List<String> builtPathsSince(int count) {
        return List.copyOf(builtPaths.subList(count, builtPaths.size()));
    }

    @Override
    public <T> T build(Class<T> point, ConfigView block) {
        synchronized (this) {
            builtPaths.add(block.path());
        }
        Config config = block instanceof HoconConfigView h ? h.config()
                : ConfigFactory.parseMap(block.unwrapped(), block.origin("").description());
        BlockValidator.Checked checked = validator.check(point, config.root(), block.path());
        if (!checked.ok()) {
            throw new ConfigException(checked.problems());
        }
        ExtensionFactory<?> factory = checked.extension().factory();
        HoconConfigView view = new HoconConfigView(checked.effective(), block.path());
        Object built = factory.create(view, this);
        if (!point.isInstance(built)) {
            throw new ConfigException(new ConfigProblem(view.origin("type"), HoconConfigView.join(block.path(), "type"),
                    "a type whose factory builds a " + point.getSimpleName(),
                    "plugin " + checked.extension().plugin().id() + " built "
                            + (built == null ? "null" : built.getClass().getName())));
        }
        synchronized (this) {
            builtBlocks.add(new BuiltBlock(view, built));
        }
        return point.cast(built);
    }

    @Override
    public <T> T build(Class<T> point, String type, Map<String, ?> settings, String origin) {
        Map<String, Object> withType = new LinkedHashMap<>(settings);
        withType.put("type", type);
        Config config = ConfigFactory.parseMap(withType, origin);
        return build(point, new HoconConfigView(config, ""));
    }

    @Override
    public io.anneal.api.train.Stage trainingStage(ConfigView block, io.anneal.api.train.Objective objective) {
        return io.anneal.runtime.train.SftStageFactory.create(block, this, objective);
    }

    @Override
    public Path resolvePath(ConfigView block, String key) {
        return resolve(block.getString(key), block.origin(key), workingDirectory);
    }

    /**
     * A path written in configuration, resolved against the folder of the file that wrote it, or
     * against the working directory for overrides and defaults.
     */
    public static Path resolve(String value, Origin origin, Path workingDirectory) {
        Path p = Path.of(value);
        if (p.isAbsolute()) {
            return p;
        }
        if (origin.file() != null) {
            Path parent = Path.of(origin.file()).toAbsolutePath().getParent();
            if (parent != null) {
                return parent.resolve(p).normalize();
            }
        }
        return workingDirectory.resolve(p).normalize();
    }
}
