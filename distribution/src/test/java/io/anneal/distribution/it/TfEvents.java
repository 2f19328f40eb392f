package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

/**
 * A reader of TensorBoard event files written for the tests, independent of the writer: TFRecord
 * framing with each masked CRC32C checked (tensorflow/core/lib/io/record_reader.cc), Event and
 * Summary protos parsed from the wire format by field number (tensorboard/compat/proto/event.proto,
 * summary.proto), and TensorBoard's restart rule applied across the files of a folder in name order
 * (event_accumulator.py: a SessionLog START at step s drops the events of steps >= s read before it).
 */
final class TfEvents {
    /** One parsed Event: its step, file_version ("" if none), whether it is a SessionLog START, and its scalars. */
    record Event(double wallTime, long step, String fileVersion, boolean start, Map<String, Float> scalars) {
    }

    private TfEvents() {
    }

    /** Scalars by tag, then by step, as TensorBoard would show them for the folder. */
    static Map<String, TreeMap<Long, Float>> scalars(Path folder) throws Exception {
        Map<String, TreeMap<Long, Float>> out = new TreeMap<>();
        List<Path> files;
        try (Stream<Path> s = Files.list(folder)) {
            files = s.filter(p -> p.getFileName().toString().contains("tfevents")).sorted().toList();
        }
        for (Path file : files) {
            for (Event e : events(file)) {
                if (e.start()) {
                    out.values().forEach(series -> series.tailMap(e.step(), true).clear());
                }
                e.scalars().forEach((tag, v) -> out.computeIfAbsent(tag, t -> new TreeMap<>()).put(e.step(), v));
            }
        }
        return out;
    }

    static List<Event> events(Path file) throws Exception {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        List<Event> out = new ArrayList<>();
        while (b.hasRemaining()) {
            byte[] length = new byte[8];
            b.get(length);
            assertEquals(masked(length), b.getInt(), file + ": the length's CRC");
            byte[] data = new byte[Math.toIntExact(ByteBuffer.wrap(length).order(ByteOrder.LITTLE_ENDIAN).getLong())];
            b.get(data);
            assertEquals(masked(data), b.getInt(), file + ": the data's CRC");
            out.add(event(ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN)));
        }
        return out;
    }

    private static int masked(byte[] bytes) {
        CRC32C crc = new CRC32C();
        crc.update(bytes);
        long c = crc.getValue();
        return (int) ((((c >>> 15) | (c << 17)) + 0xa282ead8L) & 0xffffffffL);
    }

    private static Event event(ByteBuffer b) {
        double wall = 0;
        long step = 0;
        String version = "";
        boolean start = false;
        Map<String, Float> scalars = new TreeMap<>();
        while (b.hasRemaining()) {
            long key = varint(b);
            int field = (int) (key >>> 3);
            int wire = (int) (key & 7);
            if (field == 1 && wire == 1) {
                wall = b.getDouble();
            } else if (field == 2 && wire == 0) {
                step = varint(b);
            } else if (field == 3 && wire == 2) {
                version = new String(bytes(b), StandardCharsets.UTF_8);
            } else if (field == 5 && wire == 2) {
                ByteBuffer summary = ByteBuffer.wrap(bytes(b)).order(ByteOrder.LITTLE_ENDIAN);
                while (summary.hasRemaining()) {
                    long k = varint(summary);
                    ByteBuffer value = ByteBuffer.wrap(bytes(summary)).order(ByteOrder.LITTLE_ENDIAN);
                    assertEquals(1, k >>> 3, "Summary.value is field 1");
                    String tag = null;
                    Float simple = null;
                    while (value.hasRemaining()) {
                        long vk = varint(value);
                        if (vk == ((1 << 3) | 2)) {
                            tag = new String(bytes(value), StandardCharsets.UTF_8);
                        } else if (vk == ((2 << 3) | 5)) {
                            simple = value.getFloat();
                        } else {
                            throw new AssertionError("unexpected Summary.Value key " + vk);
                        }
                    }
                    scalars.put(tag, simple);
                }
            } else if (field == 7 && wire == 2) {
                ByteBuffer log = ByteBuffer.wrap(bytes(b)).order(ByteOrder.LITTLE_ENDIAN);
                while (log.hasRemaining()) {
                    long k = varint(log);
                    if (k == ((1 << 3) | 0)) {
                        start = varint(log) == 1; // SessionStatus START = 1
                    } else {
                        throw new AssertionError("unexpected SessionLog key " + k);
                    }
                }
            } else {
                throw new AssertionError("unexpected Event key: field " + field + ", wire type " + wire);
            }
        }
        return new Event(wall, step, version, start, scalars);
    }

    private static byte[] bytes(ByteBuffer b) {
        byte[] out = new byte[Math.toIntExact(varint(b))];
        b.get(out);
        return out;
    }

    private static long varint(ByteBuffer b) {
        long v = 0;
        for (int shift = 0; ; shift += 7) {
            byte x = b.get();
            v |= (long) (x & 0x7F) << shift;
            if ((x & 0x80) == 0) {
                return v;
            }
        }
    }
}
