package io.anneal.onnx.graph;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The weights of an exported model in one file beside the graphs (ONNX external data: raw
 * little-endian tensors that the graphs' initializers point at by location, offset and length;
 * onnx/docs/ExternalData.md). Both graphs of an export share it, so the weights are on disk once,
 * and a model past protobuf's 2 GB message limit still exports.
 */
public final class WeightFile implements AutoCloseable {
    /** Tensors start on 64-byte boundaries (SIMD-friendly if the runtime maps the file). */
    private static final int ALIGNMENT = 64;

    /** One tensor's place in the file. */
    public record Entry(String name, long[] dims, long offset, long length) {
    }

    private final Path file;
    private final OutputStream out;
    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private long position;

    public WeightFile(Path file) throws IOException {
        this.file = file;
        this.out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 20);
    }

    /** The file's name, as the graphs' initializers refer to it (relative to the graphs' folder). */
    public String location() {
        return file.getFileName().toString();
    }

    /** Appends a float32 tensor of {@code dims} under {@code name}. */
    public Entry add(String name, long[] dims, float[] values) throws IOException {
        long count = 1;
        for (long d : dims) {
            count *= d;
        }
        if (count != values.length) {
            throw new IllegalArgumentException(name + ": " + values.length + " values for dims " + java.util.Arrays.toString(dims));
        }
        if (entries.containsKey(name)) {
            throw new IllegalArgumentException(name + " added twice");
        }
        long padding = (ALIGNMENT - position % ALIGNMENT) % ALIGNMENT;
        out.write(new byte[(int) padding]);
        position += padding;
        ByteBuffer bytes = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            if (!bytes.hasRemaining()) {
                out.write(bytes.array(), 0, bytes.position());
                bytes.clear();
            }
            bytes.putFloat(v);
        }
        out.write(bytes.array(), 0, bytes.position());
        Entry entry = new Entry(name, dims.clone(), position, 4L * values.length);
        position += entry.length();
        entries.put(name, entry);
        return entry;
    }

    public Entry get(String name) {
        Entry e = entries.get(name);
        if (e == null) {
            throw new IllegalArgumentException("no weight " + name);
        }
        return e;
    }

    public boolean has(String name) {
        return entries.containsKey(name);
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
