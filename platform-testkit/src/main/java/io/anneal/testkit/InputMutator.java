package io.anneal.testkit;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Mutations of seed inputs for fuzzing parsers, in the manner of AFL's and libFuzzer's havoc stage
 * (bit flips, interesting bytes and integers, dictionary tokens, deleted, repeated and truncated
 * spans), driven by one random seed so that a failing input is reproduced from (seed input, random
 * seed, mutation count) alone. Plain Java: any test framework can drive it (the project's fuzz tests
 * draw the three numbers from jqwik).
 */
public final class InputMutator {
    /** Little-endian integers that sit on boundaries parsers get wrong: lengths, offsets, counts. */
    private static final long[] INTERESTING = {0, 1, -1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, Integer.MAX_VALUE,
        0x80000000L, 0xffffffffL, 1L << 32, Long.MAX_VALUE, Long.MIN_VALUE};
    private final int maxLength;
    private final List<byte[]> dictionary;

    /**
     * @param maxLength the longest input produced
     * @param dictionary tokens of the format (keywords, delimiters) inserted whole
     */
    public InputMutator(int maxLength, List<String> dictionary) {
        this.maxLength = maxLength;
        this.dictionary = dictionary.stream().map(t -> t.getBytes(StandardCharsets.UTF_8)).toList();
    }

    public byte[] mutate(byte[] seed, long randomSeed, int mutations) {
        SplittableRandom random = new SplittableRandom(randomSeed);
        byte[] data = seed.clone();
        for (int m = 0; m < mutations; m++) {
            data = once(data, random);
            if (data.length > maxLength) {
                data = java.util.Arrays.copyOf(data, maxLength);
            }
        }
        return data;
    }

    private byte[] once(byte[] data, SplittableRandom random) {
        int n = data.length;
        int at = n == 0 ? 0 : random.nextInt(n + 1);
        switch (random.nextInt(8)) {
            case 0: // flip one bit
                if (n > 0) {
                    data[Math.min(at, n - 1)] ^= (byte) (1 << random.nextInt(8));
                }
                return data;
            case 1: // an interesting byte
                if (n > 0) {
                    data[Math.min(at, n - 1)] = (byte) INTERESTING[random.nextInt(6)];
                }
                return data;
            case 2: { // an interesting little-endian integer of 1, 2, 4 or 8 bytes
                int width = 1 << random.nextInt(4);
                if (n < width) {
                    return data;
                }
                int pos = random.nextInt(n - width + 1);
                ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
                long v = INTERESTING[random.nextInt(INTERESTING.length)];
                switch (width) {
                    case 1 -> b.put(pos, (byte) v);
                    case 2 -> b.putShort(pos, (short) v);
                    case 4 -> b.putInt(pos, (int) v);
                    default -> b.putLong(pos, v);
                }
                return data;
            }
            case 3: // a dictionary token
                return dictionary.isEmpty() ? data : splice(data, at, at, dictionary.get(random.nextInt(dictionary.size())), 1);
            case 4: { // delete a span
                if (n == 0) {
                    return data;
                }
                int from = Math.min(at, n - 1);
                int to = Math.min(n, from + 1 + random.nextInt(Math.max(1, Math.min(64, n - from))));
                return splice(data, from, to, new byte[0], 0);
            }
            case 5: { // repeat a span (nesting, long lists)
                if (n == 0) {
                    return data;
                }
                int from = Math.min(at, n - 1);
                int to = Math.min(n, from + 1 + random.nextInt(16));
                byte[] span = java.util.Arrays.copyOfRange(data, from, to);
                return splice(data, to, to, span, 1 + random.nextInt(random.nextInt(4) == 0 ? 4096 : 16));
            }
            case 6: // truncate
                return java.util.Arrays.copyOf(data, at);
            default: // a random byte
                if (n > 0) {
                    data[Math.min(at, n - 1)] = (byte) random.nextInt(256);
                }
                return data;
        }
    }

    private byte[] splice(byte[] data, int from, int to, byte[] insert, int times) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(data.length + insert.length * times);
        out.write(data, 0, from);
        for (int i = 0; i < times && out.size() < maxLength; i++) {
            out.write(insert, 0, insert.length);
        }
        out.write(data, to, data.length - to);
        return out.toByteArray();
    }
}
