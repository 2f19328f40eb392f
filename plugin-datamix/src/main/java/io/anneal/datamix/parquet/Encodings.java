package io.anneal.datamix.parquet;

/** The integer encodings of the Parquet format specification (Encodings.md) that levels, dictionary ids and lengths use. */
final class Encodings {
    private Encodings() {
    }

    static int intLE(byte[] b, int at) {
        return (b[at] & 0xff) | (b[at + 1] & 0xff) << 8 | (b[at + 2] & 0xff) << 16 | (b[at + 3] & 0xff) << 24;
    }

    /** Bits needed for levels 0..maxLevel: ceil(log2(maxLevel + 1)). */
    static int bitWidth(int maxLevel) {
        return 32 - Integer.numberOfLeadingZeros(maxLevel);
    }

    /**
     * The RLE / bit-packing hybrid: runs whose ULEB128 header's low bit says what follows, either
     * {@code header >> 1} repeats of one value stored in ceil(width / 8) little-endian bytes, or
     * {@code header >> 1} groups of 8 values bit-packed least significant bit first. Decodes
     * {@code n} values from {@code [from, to)}; a bit-packed run may pad past the n-th value.
     */
    static void hybrid(byte[] b, int from, int to, int width, int[] out, int n) {
        if (width == 0) {
            java.util.Arrays.fill(out, 0, n, 0);
            return;
        }
        int at = from;
        int filled = 0;
        int valueBytes = (width + 7) / 8;
        int mask = width == 32 ? -1 : (1 << width) - 1;
        while (filled < n) {
            if (at >= to) {
                throw new IllegalStateException("RLE/bit-packed data ends after " + filled + " of " + n + " values");
            }
            long header = 0;
            int shift = 0;
            int x;
            do {
                x = b[at++];
                header |= (long) (x & 0x7f) << shift;
                shift += 7;
            } while ((x & 0x80) != 0);
            if ((header & 1) == 0) {
                int count = (int) (header >>> 1);
                int value = 0;
                for (int i = 0; i < valueBytes; i++) {
                    value |= (b[at++] & 0xff) << (8 * i);
                }
                int take = Math.min(count, n - filled);
                java.util.Arrays.fill(out, filled, filled + take, value);
                filled += take;
            } else {
                int values = (int) (header >>> 1) * 8;
                long acc = 0;
                int bits = 0;
                for (int i = 0; i < values; i++) {
                    while (bits < width) {
                        acc |= (long) (b[at++] & 0xff) << bits;
                        bits += 8;
                    }
                    if (filled < n) {
                        out[filled++] = (int) (acc & mask);
                    }
                    acc >>>= width;
                    bits -= width;
                }
            }
        }
    }

    /**
     * DELTA_BINARY_PACKED: a header (block size, miniblocks per block, value count as ULEB128, first
     * value as zigzag ULEB128), then per block a zigzag min delta, one bit width per miniblock, and
     * the miniblocks bit-packed least significant bit first; value = previous + min delta + packed.
     * Decodes {@code n} values (the header's count) into {@code out}; returns the offset after them.
     */
    static int deltaBinaryPacked(byte[] b, int from, int[] out, int n) {
        int[] at = {from};
        long blockSize = uleb(b, at);
        long miniblocks = uleb(b, at);
        long total = uleb(b, at);
        long value = zigzag(uleb(b, at));
        if (total != n) {
            throw new IllegalStateException("DELTA_BINARY_PACKED holds " + total + " values, expected " + n);
        }
        if (miniblocks <= 0 || blockSize % miniblocks != 0 || (blockSize / miniblocks) % 8 != 0) {
            throw new IllegalStateException("DELTA_BINARY_PACKED block of " + blockSize + " values in " + miniblocks + " miniblocks");
        }
        int perMiniblock = (int) (blockSize / miniblocks);
        if (n == 0) {
            return at[0];
        }
        out[0] = (int) value;
        int filled = 1;
        while (filled < n) {
            long minDelta = zigzag(uleb(b, at));
            int widths = at[0];
            at[0] += (int) miniblocks;
            for (int m = 0; m < miniblocks && filled < n; m++) {
                int width = b[widths + m] & 0xff;
                long acc = 0;
                int bits = 0;
                int p = at[0];
                for (int i = 0; i < perMiniblock; i++) {
                    long packed = 0;
                    if (width > 0) {
                        while (bits < width) {
                            acc |= (long) (b[p++] & 0xff) << bits;
                            bits += 8;
                        }
                        packed = width == 64 ? acc : acc & ((1L << width) - 1);
                        acc = width == 64 ? 0 : acc >>> width;
                        bits -= width;
                    }
                    if (filled < n) {
                        value += minDelta + packed;
                        out[filled++] = (int) value;
                    }
                }
                at[0] += perMiniblock * width / 8; // a miniblock is stored whole, padding included
            }
        }
        return at[0];
    }

    private static long uleb(byte[] b, int[] at) {
        long v = 0;
        int shift = 0;
        int x;
        do {
            x = b[at[0]++];
            v |= (long) (x & 0x7f) << shift;
            shift += 7;
        } while ((x & 0x80) != 0);
        return v;
    }

    private static long zigzag(long v) {
        return (v >>> 1) ^ -(v & 1);
    }
}
