package io.anneal.hybrid.model;

import io.anneal.api.config.ConfigView;
import io.anneal.hybrid.safetensors.SafetensorsWriter.Dtype;
import java.math.BigDecimal;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How a model folder is written: the weights' dtype ({@code model.save-dtype}) and the largest
 * safetensors shard ({@code model.save-max-shard-size}, transformers' {@code max_shard_size}).
 */
public record SaveFormat(Dtype dtype, long maxShardBytes) {
    /** float32 in shards of 5 GB, transformers' default {@code max_shard_size="5GB"} (10^9 bytes a GB). */
    public static final SaveFormat DEFAULT = new SaveFormat(Dtype.FLOAT32, 5_000_000_000L);

    private static final Pattern SIZE = Pattern.compile("\\s*(\\d+(?:\\.\\d+)?)\\s*([KMGT]i?B|B)?\\s*",
            Pattern.CASE_INSENSITIVE);
    private static final Map<String, Long> UNITS = Map.of("B", 1L, "KB", 1_000L, "MB", 1_000_000L, "GB", 1_000_000_000L,
            "TB", 1_000_000_000_000L, "KIB", 1L << 10, "MIB", 1L << 20, "GIB", 1L << 30, "TIB", 1L << 40);

    /** The two settings of the model block; a bad value is one config error naming its path. */
    public static SaveFormat fromHocon(ConfigView block) {
        Dtype dtype = block.getEnum("save-dtype", Dtype.class);
        String key = "save-max-shard-size";
        long bytes = parseBytes(block.getString(key));
        if (bytes < 1) {
            throw block.invalid(key, "a size in bytes such as 5GB (10^9 bytes, as transformers counts), 500MB or 2GiB");
        }
        return new SaveFormat(dtype, bytes);
    }

    /** {@code 5GB}, {@code 500MB}, {@code 2GiB}, {@code 1000} (bytes); -1 when not a size. */
    static long parseBytes(String text) {
        Matcher m = SIZE.matcher(text);
        if (!m.matches()) {
            return -1;
        }
        long unit = m.group(2) == null ? 1 : UNITS.get(m.group(2).toUpperCase(Locale.ROOT));
        try {
            return new BigDecimal(m.group(1)).multiply(BigDecimal.valueOf(unit)).longValueExact();
        } catch (ArithmeticException notWhole) {
            return -1;
        }
    }
}
