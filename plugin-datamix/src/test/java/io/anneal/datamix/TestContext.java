package io.anneal.datamix;

import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import java.nio.file.Path;
import java.util.Map;

/** A test ExtensionContext: resolves paths against one folder, builds nothing else. */
final class TestContext implements ExtensionContext {
    private final Path base;
    private final int threads;

    TestContext(Path base) {
        this(base, 0);
    }

    /** With {@code pipeline.threads} = {@code threads}. */
    TestContext(Path base, int threads) {
        this.base = base;
        this.threads = threads;
    }

    @Override
    public int threads() {
        return threads;
    }

    @Override
    public <T> T build(Class<T> point, ConfigView block) {
        throw new UnsupportedOperationException("the datamix factory builds no other extension");
    }

    @Override
    public <T> T build(Class<T> point, String type, Map<String, ?> settings, String origin) {
        throw new UnsupportedOperationException("the datamix factory builds no other extension");
    }

    @Override
    public Path resolvePath(ConfigView block, String key) {
        return base.resolve(block.getString(key)).normalize();
    }

    /** The tiny hand-made tokenizer of the tests (ids listed in TemplateAndPackingTest). */
    static Path tinyTokenizer() {
        try {
            return Path.of(TestContext.class.getResource("/tiny/tokenizer.json").toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The repository's examples/ folder (tests run in plugin-datamix/). */
    static Path examples() {
        return Path.of("..", "examples").toAbsolutePath().normalize();
    }
}
