package com.example.anneal.rsqrt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.config.ConfigException;
import io.anneal.api.plugin.ApiVersion;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.testkit.TestConfig;
import org.junit.jupiter.api.Test;

/**
 * How a plugin tests its extensions with platform-testkit: {@link TestConfig#block} layers the
 * test's HOCON over this plugin's reference.conf defaults, as the runtime does for a pipeline.
 */
class InverseSqrtScheduleTest {
    private final InverseSqrtSchedule.Factory factory = new InverseSqrtSchedule.Factory();

    private LrSchedule schedule(String hocon) {
        return factory.create(TestConfig.block("lr-schedule", hocon).at("schedule"), null);
    }

    @Test
    void defaultsComeFromReferenceConf() {
        LrSchedule s = schedule("type = inverse-sqrt");
        assertEquals(1e-4, s.peakLr());
        assertEquals(0.5e-4, s.lrAt(25_000_000L), 1e-15); // half-way through the 50M warmup
        assertEquals(1e-4, s.lrAt(50_000_000L), 1e-15);
        assertEquals(0.5e-4, s.lrAt(200_000_000L), 1e-15); // peak * sqrt(50M / 200M)
    }

    @Test
    void settingsOverrideTheDefaults() {
        LrSchedule s = schedule("type = inverse-sqrt, peak-lr = 3e-4, warmup = 1M");
        assertEquals(3e-4, s.lrAt(1_000_000L), 1e-15);
        assertEquals(1.5e-4, s.lrAt(4_000_000L), 1e-15);
    }

    @Test
    void badValuesNameThePathAndWhatWasExpected() {
        ConfigException e = assertThrows(ConfigException.class, () -> schedule("type = inverse-sqrt, peak-lr = 0"));
        assertTrue(e.getMessage().contains("schedule.peak-lr") && e.getMessage().contains("a learning rate > 0")
                && e.getMessage().contains("test.conf"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> schedule("type = inverse-sqrt, warmup = 0"));
        assertTrue(e.getMessage().contains("schedule.warmup"), e.getMessage());
    }

    @Test
    void pluginOffersTheScheduleToThisApi() {
        RsqrtPlugin plugin = new RsqrtPlugin();
        assertTrue(plugin.apiRange().contains(ApiVersion.current()), plugin.apiRange() + " vs " + ApiVersion.current());
        assertEquals(1, plugin.extensions().size());
        assertEquals("inverse-sqrt", plugin.extensions().get(0).type());
    }
}
