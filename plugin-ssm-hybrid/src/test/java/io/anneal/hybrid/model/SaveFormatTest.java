package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.config.ConfigException;
import io.anneal.hybrid.safetensors.SafetensorsWriter.Dtype;
import io.anneal.testkit.TestConfig;
import org.junit.jupiter.api.Test;

/** model.save-dtype and model.save-max-shard-size, over the plugin's reference.conf defaults. */
class SaveFormatTest {
    private static SaveFormat format(String hocon) {
        return SaveFormat.fromHocon(TestConfig.block("model-architecture", "type = falcon-h1" + hocon).at("model"));
    }

    @Test
    void defaultsAreFloat32InShardsOf5GB() {
        assertEquals(new SaveFormat(Dtype.FLOAT32, 5_000_000_000L), format(""));
        assertEquals(SaveFormat.DEFAULT, format(""));
    }

    @Test
    void dtypeAndSizeAreRead() {
        assertEquals(new SaveFormat(Dtype.BFLOAT16, 2L << 30), format(", save-dtype = bfloat16, save-max-shard-size = 2GiB"));
        assertEquals(new SaveFormat(Dtype.FLOAT16, 1000), format(", save-dtype = float16, save-max-shard-size = 1000"));
        assertEquals(1_500_000_000L, SaveFormat.parseBytes("1.5GB"));
        assertEquals(500_000_000L, SaveFormat.parseBytes("500MB"));
        assertEquals(10L << 10, SaveFormat.parseBytes("10 KiB"));
        assertEquals(-1, SaveFormat.parseBytes("0.5B"));
    }

    @Test
    void badValuesNameTheKeyAndWhatWasExpected() {
        ConfigException e = assertThrows(ConfigException.class, () -> format(", save-dtype = bf16"));
        assertTrue(e.getMessage().contains("model.save-dtype") && e.getMessage().contains("float32, bfloat16, float16"),
                e.getMessage());
        e = assertThrows(ConfigException.class, () -> format(", save-max-shard-size = lots"));
        assertTrue(e.getMessage().contains("model.save-max-shard-size") && e.getMessage().contains("5GB"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> format(", save-max-shard-size = 0"));
        assertTrue(e.getMessage().contains("model.save-max-shard-size"), e.getMessage());
    }
}
