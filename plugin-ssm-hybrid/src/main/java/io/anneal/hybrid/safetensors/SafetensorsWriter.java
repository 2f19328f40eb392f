package io.anneal.hybrid.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes safetensors files (8-byte little-endian header length, a JSON header padded to 8 bytes
 * with spaces as the reference writer does, then the data) from float32 values, in float32,
 * bfloat16 or float16. The values are streamed: each tensor is asked for in pieces of at most
 * {@link #PIECE_ELEMENTS} elements, so the heap never holds more than one piece, whatever the
 * model or tensor size (a tensor over 2 GiB included). A model larger than the shard limit is
 * split as transformers' {@code save_pretrained} splits it, with {@code model.safetensors.index.json}.
 */
public final class SafetensorsWriter {

    /** Elements per piece: 16 MiB of float32 (DJL copies one piece of a tensor at a time). */
    public static final int PIECE_ELEMENTS = 1 << 22;

    /** The single-file name, and the index of a sharded folder (transformers' names). */
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private static final ObjectMapper INDEX_JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** The output dtypes: configuration name (torch's), safetensors name, bytes per element. */
    public enum Dtype {
        FLOAT32("F32", 4), BFLOAT16("BF16", 2), FLOAT16("F16", 2);

        private final String safetensorsName;
        private final int width;

        Dtype(String safetensorsName, int width) {
            this.safetensorsName = safetensorsName;
            this.width = width;
        }

        public String safetensorsName() {
            return safetensorsName;
        }

        /** The name of config.json's {@code torch_dtype}. */
        public String torchName() {
            return name().toLowerCase(Locale.ROOT);
        }

        public int width() {
            return width;
        }
    }

    /** A tensor to write: name, shape, and its float32 values, asked for in pieces. */
    public interface Source {
        String name();

        long[] shape();

        /** {@code count} float32 values from element {@code from} on (row-major order). */
        float[] values(long from, int count);

        default long elementCount() {
            long n = 1;
            for (long d : shape()) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }
    }

    private SafetensorsWriter() {
    }

    /**
     * Writes the tensors into {@code directory}: one {@code model.safetensors} when they fit in
     * {@code maxShardBytes}, otherwise {@code model-00001-of-0000N.safetensors}... and the index.
     * Returns the names of the files written.
     */
    public static List<String> writeModel(Path directory, List<? extends Source> tensors, Dtype dtype, long maxShardBytes,
            Map<String, String> metadata) throws IOException {
        List<List<Source>> shards = shard(tensors, dtype, maxShardBytes);
        if (shards.size() <= 1) {
            write(directory.resolve(SINGLE_FILE), shards.isEmpty() ? List.of() : shards.get(0), dtype, metadata);
            return List.of(SINGLE_FILE);
        }
        List<String> files = new ArrayList<>();
        Map<String, String> weightMap = new TreeMap<>();
        long totalSize = 0;
        for (int i = 0; i < shards.size(); i++) {
            String file = String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", i + 1, shards.size());
            write(directory.resolve(file), shards.get(i), dtype, metadata);
            files.add(file);
            for (Source t : shards.get(i)) {
                weightMap.put(t.name(), file);
                totalSize += t.elementCount() * dtype.width();
            }
        }
        Map<String, Object> index = new LinkedHashMap<>();
        index.put("metadata", Map.of("total_size", totalSize));
        index.put("weight_map", weightMap);
        try (FileChannel ch = FileChannel.open(directory.resolve(INDEX_FILE), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, ByteBuffer.wrap((INDEX_JSON.writeValueAsString(index) + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8)));
            ch.force(true);
        }
        files.add(INDEX_FILE);
        return files;
    }

    /**
     * The split of huggingface_hub's {@code split_torch_state_dict_into_shards} (what transformers
     * uses): in order, a tensor starts a new shard when it would take the current one past the
     * limit; a tensor larger than the limit gets a shard of its own.
     */
    static List<List<Source>> shard(List<? extends Source> tensors, Dtype dtype, long maxShardBytes) {
        List<List<Source>> shards = new ArrayList<>();
        List<Source> current = new ArrayList<>();
        long currentBytes = 0;
        for (Source t : tensors) {
            long bytes = t.elementCount() * dtype.width();
            if (bytes > maxShardBytes) {
                shards.add(List.of(t));
                continue;
            }
            if (currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(t);
            currentBytes += bytes;
        }
        if (!current.isEmpty()) {
            shards.add(current);
        }
        return shards;
    }

    /** One safetensors file. */
    public static void write(Path file, List<? extends Source> tensors, Dtype dtype, Map<String, String> metadata)
            throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            write(ch, tensors, dtype, metadata);
            ch.force(true);
        }
    }

    /** One safetensors file into any channel (a test counts bytes instead of keeping them). */
    public static void write(WritableByteChannel out, List<? extends Source> tensors, Dtype dtype,
            Map<String, String> metadata) throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        if (!metadata.isEmpty()) {
            header.put("__metadata__", metadata);
        }
        long offset = 0;
        long largest = 0;
        for (Source t : tensors) {
            long elements = t.elementCount();
            long bytes = elements * dtype.width();
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("dtype", dtype.safetensorsName());
            entry.put("shape", t.shape());
            entry.put("data_offsets", new long[] {offset, offset + bytes});
            header.put(t.name(), entry);
            offset += bytes;
            largest = Math.max(largest, elements);
        }
        byte[] json = new ObjectMapper().writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        writeFully(out, head.flip());
        ByteBuffer piece = ByteBuffer.allocate((int) Math.min(largest, PIECE_ELEMENTS) * dtype.width())
                .order(ByteOrder.LITTLE_ENDIAN);
        for (Source t : tensors) {
            long elements = t.elementCount();
            for (long from = 0; from < elements; from += PIECE_ELEMENTS) {
                int count = (int) Math.min(PIECE_ELEMENTS, elements - from);
                float[] values = t.values(from, count);
                if (values.length != count) {
                    throw new IllegalStateException("tensor " + t.name() + ": " + values.length + " values from element "
                            + from + ", expected " + count);
                }
                piece.clear();
                encode(values, dtype, piece);
                writeFully(out, piece.flip());
            }
        }
    }

    private static void encode(float[] values, Dtype dtype, ByteBuffer into) {
        switch (dtype) {
            case FLOAT32 -> {
                for (float v : values) {
                    into.putFloat(v);
                }
            }
            case BFLOAT16 -> {
                for (float v : values) {
                    into.putShort(toBfloat16(v));
                }
            }
            case FLOAT16 -> {
                for (float v : values) {
                    into.putShort(toFloat16(v));
                }
            }
            default -> throw new IllegalArgumentException(dtype.name());
        }
    }

    /**
     * float32 to bfloat16, as PyTorch rounds: the upper 16 bits, rounded to nearest, ties to even;
     * every NaN becomes the quiet NaN 0x7FC0 (never rounded into infinity).
     */
    public static short toBfloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) 0x7FC0;
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    /**
     * float32 to IEEE 754 binary16, rounded to nearest, ties to even (Java 17 has no
     * Float.floatToFloat16): subnormals as such, beyond 65504 infinity, NaN a quiet NaN.
     */
    public static short toFloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7FFFFFFF;
        if (abs > 0x7F800000) {
            return (short) (sign | 0x7E00);
        }
        if (abs >= 0x477FF000) { // 65520 and up (the tie above 65504 goes to the even infinity)
            return (short) (sign | 0x7C00);
        }
        if (abs < 0x38800000) { // below 2^-14: a subnormal, in units of 2^-24 (exact in float, rint ties to even)
            return (short) (sign | (int) Math.rint(Float.intBitsToFloat(abs) * 0x1p24f));
        }
        int half = (abs - 0x38000000) >>> 13; // exponent rebiased from 127 to 15, mantissa cut to 10 bits
        int rest = abs & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) {
            half++; // a carry into the exponent is still the right value
        }
        return (short) (sign | half);
    }

    private static void writeFully(WritableByteChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }
}
