package io.anneal.datamix;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.config.ConfigException;
import io.anneal.testkit.TestConfig;
import org.junit.jupiter.api.Test;

/** {@code ConfigView.getEnum}, the one way settings name an enum constant, on the data block's {@code loss-on}. */
class EnumSettingsTest {

    @Test
    void namesAreLowerCaseWithDashesAndToleratesCaseAndSpaces() {
        assertEquals(LossOn.LAST_ASSISTANT, TestConfig.file("loss-on = last-assistant").getEnum("loss-on", LossOn.class));
        assertEquals(LossOn.ALL, TestConfig.file("loss-on = \" ALL \"").getEnum("loss-on", LossOn.class));
        assertEquals("last-assistant", LossOn.LAST_ASSISTANT.configName());
    }

    @Test
    void anUnknownNameListsTheChoicesWithFileAndLine() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> TestConfig.file("a = 1\nloss-on = last_assistant").getEnum("loss-on", LossOn.class));
        assertTrue(e.getMessage().contains("one of assistant, last-assistant, all"), e.getMessage());
        assertTrue(e.getMessage().contains("test.conf") && e.getMessage().contains("2"), e.getMessage());
        assertTrue(e.getMessage().contains("last_assistant"), e.getMessage());
    }
}
