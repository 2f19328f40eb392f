package io.anneal.onnx.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;

class ProtoWriterTest {
    @Test
    void encodesAsTheProtobufEncodingGuideDoes() {
        // the guide's examples: field 1 = 150 is 08 96 01; field 2 = "testing" is 12 07 74 65 73 74 69 6e 67
        assertArrayEquals(new byte[] {0x08, (byte) 0x96, 0x01}, ProtoAccess.int64(1, 150));
        assertArrayEquals(new byte[] {0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'},
                ProtoAccess.string(2, "testing"));
        // packed repeated field 4 = [3, 270, 86942]: 22 06 03 8E 02 9E A7 05
        assertArrayEquals(new byte[] {0x22, 0x06, 0x03, (byte) 0x8e, 0x02, (byte) 0x9e, (byte) 0xa7, 0x05},
                ProtoAccess.packed(4, new long[] {3, 270, 86942}));
        // -1 as int64 takes ten bytes
        assertArrayEquals(new byte[] {0x08, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff,
            (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x01}, ProtoAccess.int64(1, -1));
    }
}
