package io.anneal.hybrid.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.hybrid.safetensors.SafetensorsWriter.Dtype;
import io.anneal.hybrid.safetensors.SafetensorsWriter.Source;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The writer against the safetensors format spec (8-byte little-endian header length, JSON header,
 * data), with the expected bytes written by hand here (Python's safetensors is not available to
 * the tests); the rounding to bfloat16 and float16; transformers' sharding; streaming in pieces.
 */
class SafetensorsWriterTest {
    @TempDir
    Path tmp;

    /** A tensor of given values that records what the writer asked for. */
    static class Values implements Source {
        final String name;
        final long[] shape;
        final float[] values;
        final List<long[]> asked = new ArrayList<>();

        Values(String name, long[] shape, float... values) {
            this.name = name;
            this.shape = shape;
            this.values = values;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public long[] shape() {
            return shape;
        }

        @Override
        public float[] values(long from, int count) {
            asked.add(new long[] {from, count});
            return java.util.Arrays.copyOfRange(values, (int) from, (int) from + count);
        }
    }

    private static byte[] expectedFile(String header, byte[] data) {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer b = ByteBuffer.allocate(8 + padded + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded).put(json);
        while (b.position() < 8 + padded) {
            b.put((byte) ' ');
        }
        return b.put(data).array();
    }

    @Test
    void float32FileIsTheFormatByteForByte() throws IOException {
        Path f = tmp.resolve("a.safetensors");
        SafetensorsWriter.write(f, List.of(new Values("w", new long[] {2, 2}, 1f, -2f, 0.5f, 3f),
                new Values("b", new long[] {1}, 7f)), Dtype.FLOAT32, Map.of("format", "pt"));
        ByteBuffer data = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN);
        data.putFloat(1f).putFloat(-2f).putFloat(0.5f).putFloat(3f).putFloat(7f);
        String header = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}";
        assertArrayEquals(expectedFile(header, data.array()), Files.readAllBytes(f));
    }

    /** bfloat16 computed here from the float bits alone: keep the upper half, round the lower to nearest even. */
    private static int expectedBfloat16(float f) {
        if (Float.isNaN(f)) {
            return 0x7FC0;
        }
        long bits = Float.floatToRawIntBits(f) & 0xFFFFFFFFL;
        long upper = bits >>> 16;
        long lower = bits & 0xFFFF;
        if (lower > 0x8000 || (lower == 0x8000 && (upper & 1) == 1)) {
            upper++;
        }
        return (int) upper;
    }

    private static float[] interestingFloats() {
        List<Float> v = new ArrayList<>(List.of(0f, -0f, 1f, -1f, Float.MAX_VALUE, -Float.MAX_VALUE, Float.MIN_VALUE,
                Float.MIN_NORMAL, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 65504f, 65519f, 65520f,
                1e-8f, 5.9604645e-8f, 2.9802322e-8f, 6.1035156e-5f, 3.14159265f, -2.71828f));
        for (int bits : new int[] {0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F807FFF, 0x7F7F8000, 0xFFC00001, 0x7F800001,
                0x3F801000, 0x3F803000, 0x3F800FFF, 0x33000000, 0x33000001, 0x387FE000, 0x387FF000}) {
            v.add(Float.intBitsToFloat(bits));
        }
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < 20_000; i++) {
            v.add(Float.intBitsToFloat((int) random.nextLong()));
            v.add((float) (random.nextGaussian() * Math.pow(10, random.nextInt(-9, 6))));
        }
        float[] out = new float[v.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = v.get(i);
        }
        return out;
    }

    private ByteBuffer writtenData(Dtype dtype, float[] values) throws IOException {
        Path f = tmp.resolve(dtype + ".safetensors");
        SafetensorsWriter.write(f, List.of(new Values("x", new long[] {values.length}, values)), dtype, Map.of());
        ByteBuffer all = ByteBuffer.wrap(Files.readAllBytes(f)).order(ByteOrder.LITTLE_ENDIAN);
        all.position(8 + (int) all.getLong(0));
        assertEquals((long) values.length * dtype.width(), all.remaining());
        return all.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void bfloat16IsRoundedToNearestEvenAndNaNStaysNaN() throws IOException {
        float[] values = interestingFloats();
        ByteBuffer data = writtenData(Dtype.BFLOAT16, values);
        try (SafetensorsReader r = SafetensorsReader.open(tmp.resolve("BFLOAT16.safetensors"))) {
            assertEquals("BF16", r.entries().get("x").dtype());
            float[] back = r.readFloat32("x", 0, values.length);
            for (int i = 0; i < values.length; i++) {
                int expected = expectedBfloat16(values[i]);
                assertEquals(expected, data.getShort(i * 2) & 0xFFFF, "bits of " + values[i] + " (" + i + ")");
                assertEquals(Float.intBitsToFloat(expected << 16), back[i], "value " + i);
                assertEquals(Float.isNaN(values[i]), Float.isNaN(back[i]));
            }
        }
        assertEquals(0x3F80, SafetensorsWriter.toBfloat16(Float.intBitsToFloat(0x3F808000)) & 0xFFFF, "tie to even (down)");
        assertEquals(0x3F82, SafetensorsWriter.toBfloat16(Float.intBitsToFloat(0x3F818000)) & 0xFFFF, "tie to even (up)");
        assertEquals(0x7F80, SafetensorsWriter.toBfloat16(Float.MAX_VALUE) & 0xFFFF, "rounds past the largest to infinity");
        assertEquals(0x7FC0, SafetensorsWriter.toBfloat16(Float.intBitsToFloat(0x7F800001)) & 0xFFFF, "NaN is not infinity");
    }

    @Test
    void float16IsTheNearestHalfWithTiesToEven() throws IOException {
        float[] values = interestingFloats();
        ByteBuffer data = writtenData(Dtype.FLOAT16, values);
        try (SafetensorsReader r = SafetensorsReader.open(tmp.resolve("FLOAT16.safetensors"))) {
            float[] back = r.readFloat32("x", 0, values.length);
            for (int i = 0; i < values.length; i++) {
                float v = values[i];
                short h = data.getShort(i * 2);
                assertEquals(SafetensorsReader.halfToFloat(h), back[i], 0f);
                if (Float.isNaN(v)) {
                    assertTrue(Float.isNaN(back[i]));
                    continue;
                }
                if (Float.isInfinite(back[i])) {
                    assertTrue(Float.isInfinite(v) || Math.abs(v) >= 65520f, v + " overflows only from 65520 on");
                    continue;
                }
                // no other half is nearer; at a tie the even one (independent of the encoder's bit tricks)
                double error = Math.abs((double) v - back[i]);
                for (int d : new int[] {-1, 1}) {
                    float o = SafetensorsReader.halfToFloat((short) (h + d));
                    if (Float.isNaN(o) || Float.isInfinite(o)) {
                        continue; // past the finite halves
                    }
                    double otherError = Math.abs((double) v - o);
                    assertTrue(error < otherError || (error == otherError && (h & 1) == 0),
                            v + " -> " + back[i] + " but " + o + " is nearer, or as near and even");
                }
            }
        }
        for (int h = 0; h < 0x10000; h++) { // every half that is not NaN comes back exactly
            float f = SafetensorsReader.halfToFloat((short) h);
            if (!Float.isNaN(f)) {
                assertEquals(h, SafetensorsWriter.toFloat16(f) & 0xFFFF, "half " + Integer.toHexString(h));
            }
        }
        assertEquals(0x3C00, SafetensorsWriter.toFloat16(1f + 0x1p-11f) & 0xFFFF, "tie to even (down)");
        assertEquals(0x3C02, SafetensorsWriter.toFloat16(1f + 3 * 0x1p-11f) & 0xFFFF, "tie to even (up)");
        assertEquals(0x7C00, SafetensorsWriter.toFloat16(65520f) & 0xFFFF);
        assertEquals(0x7BFF, SafetensorsWriter.toFloat16(65519.996f) & 0xFFFF);
        assertEquals(0x0001, SafetensorsWriter.toFloat16(0x1p-24f) & 0xFFFF, "smallest subnormal");
        assertEquals(0x0000, SafetensorsWriter.toFloat16(0x1p-25f) & 0xFFFF, "tie to even zero");
        assertEquals(0x8000, SafetensorsWriter.toFloat16(-0f) & 0xFFFF);
    }

    @Test
    void shardsAreSplitAsTransformersSplitsThem() throws IOException {
        // 16 + 16 fill the 32-byte shard; 40 is over the limit and gets a shard of its own at once
        // (huggingface_hub's split_torch_state_dict_into_shards); 8 would tip the open shard over.
        Values a = new Values("a", new long[] {4}, 1, 2, 3, 4);
        Values b = new Values("b", new long[] {2, 2}, 5, 6, 7, 8);
        Values c = new Values("c", new long[] {10}, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18);
        Values d = new Values("d", new long[] {2}, 19, 20);
        List<String> files = SafetensorsWriter.writeModel(tmp, List.of(a, b, c, d), Dtype.FLOAT32, 32, Map.of("format", "pt"));
        assertEquals(List.of("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json"), files);
        JsonNode index = new ObjectMapper().readTree(tmp.resolve("model.safetensors.index.json").toFile());
        assertEquals(80, index.get("metadata").get("total_size").asLong());
        assertEquals("{\"a\":\"model-00002-of-00003.safetensors\",\"b\":\"model-00002-of-00003.safetensors\","
                + "\"c\":\"model-00001-of-00003.safetensors\",\"d\":\"model-00003-of-00003.safetensors\"}",
                index.get("weight_map").toString());
        for (Values t : List.of(a, b, c, d)) {
            try (SafetensorsReader r = SafetensorsReader.open(tmp.resolve(index.get("weight_map").get(t.name).asText()))) {
                assertArrayEquals(t.values, r.readFloat32(t.name, 0, t.values.length));
            }
        }
        assertTrue(!Files.exists(tmp.resolve("model.safetensors")));

        Path single = Files.createDirectory(tmp.resolve("single"));
        assertEquals(List.of("model.safetensors"),
                SafetensorsWriter.writeModel(single, List.of(a, b, c, d), Dtype.BFLOAT16, 40, Map.of()));
    }

    /** Counts what is written and keeps only the header and the last bytes: a "file" of any size. */
    static final class CountingChannel implements WritableByteChannel {
        long written;
        final ByteArrayOutputStream head = new ByteArrayOutputStream();
        final byte[] tail = new byte[16];

        @Override
        public int write(ByteBuffer src) {
            int n = src.remaining();
            byte[] bytes = new byte[Math.min(n, 4096)];
            if (written < 4096) {
                src.duplicate().get(bytes, 0, (int) Math.min(bytes.length, 4096 - written));
                head.write(bytes, 0, (int) Math.min(bytes.length, 4096 - written));
            }
            ByteBuffer end = src.duplicate();
            end.position(Math.max(src.position(), src.limit() - tail.length));
            int keep = end.remaining();
            System.arraycopy(tail, keep, tail, 0, tail.length - keep);
            end.get(tail, tail.length - keep, keep);
            src.position(src.limit());
            written += n;
            return n;
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }

    @Test
    void aTensorOver2GiBIsWrittenInPiecesWithoutItsBytesInTheHeap() throws IOException {
        long elements = (1L << 29) + 3; // 2 GiB + 12 bytes as float32: no int-sized buffer can hold it
        long[] largestAsked = {0};
        Source big = new Source() {
            @Override
            public String name() {
                return "big";
            }

            @Override
            public long[] shape() {
                return new long[] {elements};
            }

            @Override
            public float[] values(long from, int count) {
                largestAsked[0] = Math.max(largestAsked[0], count);
                float[] v = new float[count];
                for (int i = 0; i < count; i++) {
                    v[i] = (from + i) % 1000;
                }
                return v;
            }
        };
        CountingChannel out = new CountingChannel();
        SafetensorsWriter.write(out, List.of(big), Dtype.FLOAT32, Map.of());
        byte[] head = out.head.toByteArray();
        long headerLength = ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        JsonNode header = new ObjectMapper().readTree(new String(head, 8, (int) headerLength, StandardCharsets.UTF_8));
        assertEquals("[0," + elements * 4 + "]", header.get("big").get("data_offsets").toString());
        assertEquals(8 + headerLength + elements * 4, out.written);
        assertTrue(largestAsked[0] <= SafetensorsWriter.PIECE_ELEMENTS, "asked " + largestAsked[0] + " values at once");
        ByteBuffer tail = ByteBuffer.wrap(out.tail, 4, 12).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = elements - 3; i < elements; i++) {
            assertEquals(i % 1000, tail.getFloat(), "value " + i);
        }
    }

    @Test
    void theWriterStreamsEachTensorWhenItsBytesAreDue() throws IOException {
        CountingChannel out = new CountingChannel();
        List<Long> positionWhenAsked = new ArrayList<>();
        List<Source> tensors = new ArrayList<>();
        long[] sizes = {3, 1000, 17, 250};
        long largest = 1000;
        long[] largestAsked = {0};
        for (int t = 0; t < sizes.length; t++) {
            int n = (int) sizes[t];
            tensors.add(new Values("t" + t, new long[] {n}, new float[n]) {
                @Override
                public float[] values(long from, int count) {
                    positionWhenAsked.add(out.written);
                    largestAsked[0] = Math.max(largestAsked[0], count);
                    return super.values(from, count);
                }
            });
        }
        SafetensorsWriter.write(out, tensors, Dtype.BFLOAT16, Map.of());
        long headerEnd = 8 + ByteBuffer.wrap(out.head.toByteArray()).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        // each tensor is asked for only when everything before it is on disk: no tensor waits in the heap
        assertEquals(List.of(headerEnd, headerEnd + 6, headerEnd + 2006, headerEnd + 2040), positionWhenAsked);
        assertTrue(largestAsked[0] <= largest);
    }
}
