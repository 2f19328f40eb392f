package io.anneal.datamix.parquet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The integer encodings against the examples of the Parquet format specification (Encodings.md) and bytes worked out by hand. */
class EncodingsTest {

    private static byte[] bytes(int... b) {
        byte[] out = new byte[b.length];
        for (int i = 0; i < b.length; i++) {
            out[i] = (byte) b[i];
        }
        return out;
    }

    @Test
    void hybridRunsAndBitPacking() {
        // Encodings.md: 0..7 bit-packed at width 3 is 10001000 11000110 11111010 (0x88 0xC6 0xFA);
        // the run header (1 group << 1) | 1 = 3.
        int[] out = new int[8];
        Encodings.hybrid(bytes(0x03, 0x88, 0xC6, 0xFA), 0, 4, 3, out, 8);
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7}, out);
        // An RLE run: header 5 << 1 = 0x0A, value 3 in one byte; then a bit-packed group at width 2
        // holding 1,2 then padding (0b1001 = 0x09 in the first byte): 5 x 3, then 1, 2.
        int[] mixed = new int[7];
        Encodings.hybrid(bytes(0x0A, 0x03, 0x03, 0x09, 0x00), 0, 5, 2, mixed, 7);
        assertArrayEquals(new int[] {3, 3, 3, 3, 3, 1, 2}, mixed);
        assertEquals(0, Encodings.bitWidth(0));
        assertEquals(1, Encodings.bitWidth(1));
        assertEquals(2, Encodings.bitWidth(3));
        assertEquals(3, Encodings.bitWidth(4));
    }

    @Test
    void deltaBinaryPackedSpecExamples() {
        // Example 1 of Encodings.md: 1 2 3 4 5 -> min delta 1, bit widths 0. Header: block 128 (0x80 0x01),
        // 4 miniblocks, 5 values, first value zigzag(1) = 2; block: min delta zigzag(1) = 2, widths 0 0 0 0.
        int[] out = new int[5];
        int end = Encodings.deltaBinaryPacked(bytes(0x80, 0x01, 0x04, 0x05, 0x02, 0x02, 0, 0, 0, 0, 0x7F), 0, out, 5);
        assertArrayEquals(new int[] {1, 2, 3, 4, 5}, out);
        assertEquals(10, end, "no miniblock bodies at width 0");
        // Example 2: 7 5 3 1 2 3 4 5 -> deltas -2 -2 -2 1 1 1 1, min delta -2 (zigzag 3), relative 0 0 0 3 3 3 3
        // at width 2: first byte 0b11000000 = 0xC0, second 0xFF, then padding to 32 values (8 bytes).
        int[] out2 = new int[8];
        int end2 = Encodings.deltaBinaryPacked(bytes(0x80, 0x01, 0x04, 0x08, 0x0E, 0x03, 2, 0, 0, 0,
                0xC0, 0xFF, 0, 0, 0, 0, 0, 0, 0x55), 0, out2, 8);
        assertArrayEquals(new int[] {7, 5, 3, 1, 2, 3, 4, 5}, out2);
        assertEquals(18, end2, "header 5 + min delta 1 + widths 4 + one whole miniblock of 32 x 2 bits");
    }
}
