package io.anneal.runtime.output;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The TensorBoard sink's bytes against protobuf encodings written out by hand from event.proto and
 * summary.proto, and its TFRecord framing checked with the JDK's CRC32C.
 */
class TensorBoardMetricsSinkTest {
    private static final HexFormat HEX = HexFormat.of();
    /** wall_time 1.5 s: Event field 1, wire type 1 (0x09), the double 1.5 little endian. */
    private static final String WALL = "09" + "000000000000f83f";

    @TempDir
    Path tmp;

    @Test
    void theMaskIsTensorFlowsOnTheCrc32cCheckValue() {
        // CRC-32C of "123456789" is 0xe3069283 (the catalogue's check value); rotated right 15 and
        // plus 0xa282ead8 (crc32c.h Mask): 0xc78ab0e5, computed by hand with a bitwise CRC in Python
        assertEquals(0xc78ab0e5, TensorBoardMetricsSink.maskedCrc32c("123456789".getBytes(), 0, 9));
    }

    @Test
    void aFreshRunWritesVersionStartAtZeroAndOneEventPerStep() throws Exception {
        TensorBoardMetricsSink sink = new TensorBoardMetricsSink("tb", Clock.fixed(Instant.ofEpochMilli(1500), ZoneOffset.UTC));
        sink.open(tmp, false, new PrintStream(java.io.OutputStream.nullOutputStream()));
        assertFalse(Files.exists(tmp.resolve("tb")), "nothing is created before the first record");
        Map<String, Object> metrics = new LinkedHashMap<>();
        metrics.put("loss", 1.5);
        metrics.put("note", "text is not a scalar");
        sink.log(7, metrics);
        sink.close();
        List<byte[]> records = records(onlyFile(tmp.resolve("tb")));
        assertEquals(3, records.size());
        // Event { wall_time = 1.5, step = 0, file_version (3, 0x1a) = "brain.Event:2" (13 bytes) }
        assertEquals(WALL + "1000" + "1a0d" + HEX.formatHex("brain.Event:2".getBytes()), HEX.formatHex(records.get(0)));
        // Event { step = 0, session_log (7, 0x3a) = SessionLog { status (1, varint) = START (1) } }
        assertEquals(WALL + "1000" + "3a02" + "0801", HEX.formatHex(records.get(1)));
        // Event { step = 7, summary (5, 0x2a) = Summary { value (1) = Value { tag (1) = "loss",
        // simple_value (2, fixed32 0x15) = 1.5f (0x3fc00000 LE) } } }
        assertEquals(WALL + "1007" + "2a0d" + "0a0b" + "0a04" + HEX.formatHex("loss".getBytes()) + "15" + "0000c03f",
                HEX.formatHex(records.get(2)));
    }

    @Test
    void aResumeStartsANewFileWhoseStartIsTheStepAfterTheCheckpoint() throws Exception {
        TensorBoardMetricsSink sink = new TensorBoardMetricsSink("tb", Clock.fixed(Instant.ofEpochMilli(1500), ZoneOffset.UTC));
        sink.open(tmp, true, new PrintStream(java.io.OutputStream.nullOutputStream()));
        sink.restartAt(4);
        sink.log(5, Map.of("grad_norm", 0.25));
        sink.close();
        List<byte[]> records = records(onlyFile(tmp.resolve("tb")));
        assertEquals(WALL + "1005" + "3a02" + "0801", HEX.formatHex(records.get(1)));
        assertTrue(HEX.formatHex(records.get(2)).startsWith(WALL + "1005" + "2a"));
    }

    private static Path onlyFile(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> files = s.toList();
            assertEquals(1, files.size(), files.toString());
            assertTrue(files.get(0).getFileName().toString().startsWith("events.out.tfevents."), files.toString());
            return files.get(0);
        }
    }

    /** TFRecord framing read back: each length and data checked against its masked CRC32C. */
    static List<byte[]> records(Path file) throws Exception {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        List<byte[]> out = new ArrayList<>();
        while (b.hasRemaining()) {
            byte[] length = new byte[8];
            b.get(length);
            assertEquals(masked(length), b.getInt(), "length CRC");
            byte[] data = new byte[(int) ByteBuffer.wrap(length).order(ByteOrder.LITTLE_ENDIAN).getLong()];
            b.get(data);
            assertEquals(masked(data), b.getInt(), "data CRC");
            out.add(data);
        }
        return out;
    }

    private static int masked(byte[] bytes) {
        CRC32C crc = new CRC32C();
        crc.update(bytes);
        long c = crc.getValue();
        return (int) ((((c >>> 15) | (c << 17)) + 0xa282ead8L) & 0xffffffffL);
    }

    @Test
    void recordsFrameTheirData() {
        byte[] data = {1, 2, 3};
        ByteBuffer b = ByteBuffer.wrap(TensorBoardMetricsSink.record(data)).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(3L, b.getLong());
        b.getInt();
        byte[] back = new byte[3];
        b.get(back);
        assertArrayEquals(data, back);
    }
}
