package io.anneal.hybrid.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The safetensors format's own rules (the reference reader's validate_offsets): the data offsets of
 * the tensors, sorted, cover the data buffer exactly, with no overlap, no hole and nothing after
 * them; each tensor's bytes are its dtype's width times its shape's element count; header keys are
 * unique. Each violation is one InputException naming the file, the tensor and what was expected.
 */
class SafetensorsReaderTest {
    @TempDir
    Path tmp;

    private Path file(String header, int dataBytes) throws IOException {
        return file(header.getBytes(StandardCharsets.UTF_8), dataBytes);
    }

    private Path file(byte[] header, int dataBytes) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header);
        Path f = tmp.resolve("model.safetensors");
        Files.write(f, b.array());
        return f;
    }

    private InputException refused(Path f) {
        return assertThrows(InputException.class, () -> SafetensorsReader.open(f).close());
    }

    private static void assertNames(InputException e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' missing in: " + e.getMessage());
        }
        assertTrue(!e.getMessage().contains("Exception") && !e.getMessage().contains("REDACTED")
                && !e.getMessage().contains("com.fasterxml"), e.getMessage());
    }

    @Test
    void wellFormedFileOpens() throws IOException {
        Path f = file("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                + "\"empty\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]}}", 12);
        try (SafetensorsReader r = SafetensorsReader.open(f)) {
            assertEquals(3, r.entries().size());
            assertEquals(2, r.readFloat32("b", 0, 2).length);
        }
    }

    @Test
    void overlappingTensorsAreRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        assertNames(refused(f), f.toString(), "tensor 'b'", "overlaps tensor 'a'", "expected to start at byte 8");
    }

    @Test
    void aHoleBetweenTensorsIsRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12);
        assertNames(refused(f), f.toString(), "tensor 'b'", "4 unused bytes", "expected to start at byte 4");
    }

    @Test
    void dataNotStartingAtZeroIsRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
        assertNames(refused(f), f.toString(), "tensor 'a'", "expected to start at byte 0");
    }

    @Test
    void trailingBytesAfterTheDataAreRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9);
        assertNames(refused(f), f.toString(), "5 bytes after the last tensor", "'a'", "expected the data to end at byte 4");
    }

    @Test
    void duplicateHeaderKeysAreRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
        assertNames(refused(f), f.toString(), "duplicate", "'a'");
    }

    @Test
    void offsetsThatDoNotMatchDtypeTimesShapeAreRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
        assertNames(refused(f), f.toString(), "tensor 'a'", "expected 12");
    }

    @Test
    void anUnknownDtypeIsRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
        assertNames(refused(f), f.toString(), "tensor 'a'", "dtype 'F33'", "expected one of");
    }

    @Test
    void aShapeWhoseSizeOverflowsIsRefused() throws IOException {
        Path f = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4);
        assertNames(refused(f), f.toString(), "tensor 'a'", "shape");
    }

    @Test
    void aHeaderLengthBeyondTheFileIsRefused() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(1000).put("{}      ".getBytes(StandardCharsets.US_ASCII));
        Path f = tmp.resolve("short.safetensors");
        Files.write(f, b.array());
        assertNames(refused(f), f.toString(), "header length 1000", "16 bytes");
    }

    @Test
    void aHeaderThatIsNotUtf8IsRefused() throws IOException {
        byte[] header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes(StandardCharsets.UTF_8);
        header[2] = (byte) 0xff;
        Path f = file(header, 4);
        assertNames(refused(f), f.toString(), "not valid UTF-8", "byte 2");
    }

    @Test
    void aHeaderThatIsNotJsonIsRefusedWithoutParserInternals() throws IOException {
        Path f = file("{\"a\": [1, 2", 0);
        assertNames(refused(f), f.toString(), "header is not valid JSON");
    }

    @Test
    void aTensorOver2GiBIsReadInPieces() throws IOException {
        // 2^29 + 2 float32 elements: 2 GiB + 8 bytes, past any int-sized buffer or map. A sparse file:
        // only the header and the last two values are really written.
        long elements = (1L << 29) + 2;
        byte[] header = ("{\"big\":{\"dtype\":\"F32\",\"shape\":[" + elements + "],\"data_offsets\":[0," + elements * 4 + "]}}")
                .getBytes(StandardCharsets.UTF_8);
        Path f = tmp.resolve("big.safetensors");
        try (var ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
            ByteBuffer head = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(header.length).put(header).flip();
            ch.write(head);
            ByteBuffer last = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(1.5f).putFloat(-2.25f).flip();
            ch.write(last, 8 + header.length + elements * 4 - 8);
        }
        try (SafetensorsReader r = SafetensorsReader.open(f)) {
            assertEquals(elements, r.entries().get("big").elementCount());
            assertArrayEquals(new float[] {0f, 1.5f, -2.25f}, r.readFloat32("big", elements - 3, 3));
            assertArrayEquals(new float[] {0f, 0f}, r.readFloat32("big", 0, 2));
        }
    }
}
