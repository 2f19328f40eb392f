package io.anneal.hybrid.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.InputException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.CharBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a safetensors file (8-byte little-endian header length, a JSON header, raw tensor data;
 * https://github.com/huggingface/safetensors). Tensors are read in pieces when asked, so files and tensors of
 * any size work and nothing is read before it is needed. Malformed input is one {@link InputException}
 * naming the file (and the tensor), never a JVM crash.
 */
public final class SafetensorsReader implements AutoCloseable {

    /** One tensor's header entry. */
    public record Entry(String name, String dtype, long[] shape, long begin, long end) {
        public long elementCount() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    /** The dtypes of the safetensors format that have a fixed element width. */
    private static final String DTYPES = "F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2";
    private static final ObjectMapper HEADER_JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    /** Largest header the format allows (safetensors caps it at 100 MB). */
    private static final long MAX_HEADER_BYTES = 100L << 20;

    private final Path file;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, Entry> entries;

    private SafetensorsReader(Path file, FileChannel channel, long dataStart, Map<String, Entry> entries) {
        this.file = file;
        this.channel = channel;
        this.dataStart = dataStart;
        this.entries = entries;
    }

    public static SafetensorsReader open(Path file) {
        FileChannel channel;
        try {
            channel = FileChannel.open(file, StandardOpenOption.READ);
        } catch (IOException e) {
            throw new InputException(file + ": cannot open safetensors file: " + e.getMessage(), e);
        }
        try {
            long size = channel.size();
            if (size < 8) {
                throw new InputException(file + ": truncated safetensors file: " + size + " bytes, expected at least 8");
            }
            ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, lengthBytes, 0);
            long headerLength = lengthBytes.flip().getLong();
            if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
                throw new InputException(file + ": malformed safetensors file: header length " + headerLength
                        + " points past the end of the file (" + size + " bytes) or exceeds 100 MB");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLength);
            readFully(channel, header, 8);
            JsonNode root = parseHeader(file, header.array());
            long dataStart = 8 + headerLength;
            long dataSize = size - dataStart;
            Map<String, Entry> entries = new LinkedHashMap<>();
            for (Map.Entry<String, JsonNode> field : root.properties()) {
                if (field.getKey().equals("__metadata__")) {
                    if (!field.getValue().isObject()) {
                        throw new InputException(file + ": malformed safetensors header: __metadata__ is "
                                + field.getValue().getNodeType().name().toLowerCase(java.util.Locale.ROOT)
                                + ", expected an object of strings");
                    }
                    continue;
                }
                entries.put(field.getKey(), parseEntry(file, field.getKey(), field.getValue(), dataSize));
            }
            checkContiguous(file, entries.values(), dataSize);
            return new SafetensorsReader(file, channel, dataStart, Collections.unmodifiableMap(entries));
        } catch (IOException e) {
            closeQuietly(channel);
            throw new InputException(file + ": cannot read safetensors file: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly(channel);
            throw e;
        }
    }

    /** The header as JSON: valid UTF-8, one JSON object, no key twice. */
    private static JsonNode parseHeader(Path file, byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        if (StandardCharsets.UTF_8.newDecoder().decode(in, CharBuffer.allocate(bytes.length), true).isError()) {
            throw new InputException(file + ": malformed safetensors header: not valid UTF-8 at byte " + in.position()
                    + " of the header, expected a UTF-8 JSON object");
        }
        JsonNode root;
        try {
            root = HEADER_JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            String what = String.valueOf(e.getOriginalMessage()).replaceAll(" ?\\(start marker at \\[Source: [^\\]]*\\]\\)", "");
            boolean duplicate = what.startsWith("Duplicate field");
            throw new InputException(file + ": malformed safetensors header: " + (duplicate
                    ? what.replace("Duplicate field", "duplicate key") + ", expected each tensor name once"
                    : "the header is not valid JSON (" + what + (e.getLocation() == null ? "" : " at line "
                    + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr()) + ")"), e);
        } catch (IOException e) {
            throw new InputException(file + ": malformed safetensors header: the header is not valid JSON", e);
        }
        if (root == null || !root.isObject()) {
            throw new InputException(file + ": malformed safetensors header: expected a JSON object");
        }
        return root;
    }

    /**
     * The format's rule (the reference reader's validate_offsets): sorted by offset, the tensors
     * cover the data buffer exactly, from byte 0 to its end, with no overlap and no hole.
     */
    private static void checkContiguous(Path file, java.util.Collection<Entry> entries, long dataSize) {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        Entry previous = null;
        for (Entry e : sorted) {
            if (e.begin() != expected) {
                String problem = e.begin() < expected
                        ? "overlaps tensor '" + previous.name() + "' (bytes " + previous.begin() + " to " + previous.end() + ")"
                        : "leaves " + (e.begin() - expected) + " unused bytes before it";
                throw new InputException(file + ": tensor '" + e.name() + "': data offsets [" + e.begin() + ", " + e.end()
                        + "] " + problem + "; expected to start at byte " + expected
                        + " (tensors must cover the data section exactly, without overlap or holes)");
            }
            expected = e.end();
            previous = e;
        }
        if (expected != dataSize) {
            throw new InputException(file + ": malformed safetensors file: " + (dataSize - expected)
                    + " bytes after the last tensor" + (previous == null ? "" : " ('" + previous.name() + "')")
                    + "; expected the data to end at byte " + expected + " of the data section");
        }
    }

    private static Entry parseEntry(Path file, String name, JsonNode node, long dataSize) {
        String where = file + ": tensor '" + name + "'";
        JsonNode dtype = node.get("dtype");
        JsonNode shape = node.get("shape");
        JsonNode offsets = node.get("data_offsets");
        if (dtype == null || !dtype.isTextual() || shape == null || !shape.isArray() || offsets == null
                || !offsets.isArray() || offsets.size() != 2) {
            throw new InputException(where + ": malformed header entry, expected {dtype, shape, data_offsets[2]}, found "
                    + node);
        }
        int width = elementBytes(dtype.asText());
        if (width < 0) {
            throw new InputException(where + ": unknown dtype '" + dtype.asText() + "', expected one of " + DTYPES);
        }
        long[] dims = new long[shape.size()];
        long count = 1;
        for (int i = 0; i < dims.length; i++) {
            if (!shape.get(i).isIntegralNumber() || !shape.get(i).canConvertToLong() || shape.get(i).asLong() < 0) {
                throw new InputException(where + ": malformed shape " + shape + ", expected non-negative integers");
            }
            dims[i] = shape.get(i).asLong();
            try {
                count = Math.multiplyExact(count, dims[i]);
                Math.multiplyExact(count, width);
            } catch (ArithmeticException overflow) {
                throw new InputException(where + ": shape " + shape + " has more bytes than a file can hold");
            }
        }
        long begin = offsets.get(0).isIntegralNumber() ? offsets.get(0).asLong(-1) : -1;
        long end = offsets.get(1).isIntegralNumber() ? offsets.get(1).asLong(-1) : -1;
        if (begin < 0 || end < begin || end > dataSize) {
            throw new InputException(where + ": data offsets [" + begin + ", " + end + "] point outside the data section ("
                    + dataSize + " bytes): the file is truncated or malformed");
        }
        if (end - begin != count * width) {
            throw new InputException(where + ": " + (end - begin) + " bytes of data for shape " + shape + " of "
                    + dtype.asText() + ", expected " + count * width);
        }
        return new Entry(name, dtype.asText(), dims, begin, end);
    }

    /** Bytes per element of a safetensors dtype, or -1 when unknown. */
    public static int elementBytes(String dtype) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" -> 1;
            default -> -1;
        };
    }

    public Path file() {
        return file;
    }

    public Map<String, Entry> entries() {
        return entries;
    }

    /**
     * {@code count} values of the tensor as float32, from element {@code from} on: F32 as stored,
     * F16 and BF16 widened. Read with positional reads of at most that piece (no int-sized map of
     * the whole tensor), so tensors over 2 GiB are read piece by piece. Any other dtype is an error
     * naming the tensor and the dtype found.
     */
    public float[] readFloat32(String name, long from, int count) {
        Entry e = entries.get(name);
        if (e == null) {
            throw new InputException(file + ": tensor '" + name + "' is missing");
        }
        int width = elementBytes(e.dtype());
        if (!e.dtype().equals("F32") && !e.dtype().equals("F16") && !e.dtype().equals("BF16")) {
            throw new InputException(file + ": tensor '" + name + "' has dtype " + e.dtype()
                    + ", expected F32, F16 or BF16");
        }
        if (from < 0 || count < 0 || from + count > e.elementCount() || count > Integer.MAX_VALUE / 4) {
            throw new IllegalArgumentException("tensor " + name + ": elements [" + from + ", " + (from + count)
                    + ") of " + e.elementCount());
        }
        ByteBuffer raw = ByteBuffer.allocate(count * width).order(ByteOrder.LITTLE_ENDIAN);
        try {
            readFully(channel, raw, dataStart + e.begin() + from * width);
        } catch (IOException ex) {
            throw new InputException(file + ": tensor '" + name + "': cannot read its data: " + ex.getMessage(), ex);
        }
        raw.flip();
        float[] out = new float[count];
        switch (e.dtype()) {
            case "F32" -> raw.asFloatBuffer().get(out);
            case "BF16" -> {
                for (int i = 0; i < count; i++) {
                    out[i] = Float.intBitsToFloat((raw.getShort(i * 2) & 0xffff) << 16);
                }
            }
            default -> {
                for (int i = 0; i < count; i++) {
                    out[i] = halfToFloat(raw.getShort(i * 2));
                }
            }
        }
        return out;
    }

    /** IEEE 754 binary16 to float (Java 17 has no Float.float16ToFloat). */
    public static float halfToFloat(short half) {
        int h = half & 0xffff;
        int sign = (h & 0x8000) << 16;
        int exponent = (h >>> 10) & 0x1f;
        int mantissa = h & 0x3ff;
        if (exponent == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13)); // inf or NaN
        }
        if (exponent == 0) {
            float magnitude = mantissa * 0x1p-24f; // subnormal (or zero)
            return sign == 0 ? magnitude : -magnitude;
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    private static void readFully(FileChannel channel, ByteBuffer buffer, long position) throws IOException {
        long pos = position;
        while (buffer.hasRemaining()) {
            int n = channel.read(buffer, pos);
            if (n < 0) {
                throw new IOException("unexpected end of file at byte " + pos);
            }
            pos += n;
        }
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // the original problem is the one to report
        }
    }

    @Override
    public void close() {
        closeQuietly(channel);
    }
}
