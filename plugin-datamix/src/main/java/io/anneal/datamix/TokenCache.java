package io.anneal.datamix;

import io.anneal.api.InputException;
import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * The rendered documents of one source file ({@code <file>.anneal-tokens}), written by the index
 * pass so that a record is tokenised once, not once per draw. The training stream reads a record
 * with one positional read: no JSON, no tokenizer, no gzip (a gzip shard is never decompressed
 * again). Only the offset table is held in memory; the documents stream from disk.
 *
 * <p>Layout (little-endian records, one file per source file):
 * <pre>
 *   header  : int magic "ANTK", int version, UTF key, byte id width (2 = uint16 when the vocabulary
 *             has at most 65,536 ids, else 4 = int32)
 *   record  : int CRC-32C of the rest of the record; varint length, varint assistant turns,
 *             varint masked EOS, varint runs, the mask as run lengths (alternately unsupervised and
 *             supervised, starting unsupervised); then the ids
 *   table   : long offset of each record and of the end of the last one (n + 1 longs)
 *   footer  : int records n, long table offset, int CRC-32C of the table, int magic
 * </pre>
 * The key is the index's (file size and mtime, tokenizer SHA-256, template with loss-on and
 * supervise-eos, on-error): any change rebuilds it. A cache whose structure does not check out
 * (short, wrong key, bad table) is rebuilt, never trusted; a record whose checksum fails when read
 * is reported with the file to delete.
 */
final class TokenCache {
    static final String SUFFIX = ".anneal-tokens";
    private static final int MAGIC = 0x414e544b; // "ANTK"
    private static final int VERSION = 1;
    private static final int FOOTER_BYTES = 4 + 8 + 4 + 4;

    private TokenCache() {
    }

    /** The bytes of one id: uint16 when every id fits (a vocabulary of at most 65,536), else int32. */
    static int idWidth(int vocabularySize) {
        return vocabularySize <= 65_536 ? 2 : 4;
    }

    /** Appends documents in index order to a temporary file; {@link #commit} moves it into place. */
    static final class Writer implements AutoCloseable {
        private final Path target;
        private final Path tmp;
        private final OutputStream out;
        private final int width;
        private long position;
        private long[] offsets = new long[1024];
        private int count;
        private ByteBuffer record = ByteBuffer.allocate(1 << 12).order(ByteOrder.LITTLE_ENDIAN);
        private final CRC32C crc = new CRC32C();
        private boolean committed;

        Writer(Path target, String key, int vocabularySize) throws IOException {
            this.target = target;
            this.tmp = CacheFiles.temporaryFor(target); // this writer's own: others may be building the same cache
            this.width = idWidth(vocabularySize);
            OutputStream opened = null;
            try {
                opened = new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16);
                ByteArrayOutputStream header = new ByteArrayOutputStream();
                try (DataOutputStream h = new DataOutputStream(header)) {
                    h.writeInt(MAGIC);
                    h.writeInt(VERSION);
                    h.writeUTF(key);
                    h.writeByte(width);
                }
                opened.write(header.toByteArray());
                position = header.size();
            } catch (IOException | RuntimeException e) {
                discard(opened, tmp, e);
                throw e;
            }
            this.out = opened;
        }

        void append(Document d) throws IOException {
            int[] ids = d.ids();
            boolean[] sup = d.supervised();
            int runs = 0;
            boolean state = false;
            for (boolean s : sup) {
                if (s != state) {
                    runs++;
                    state = s;
                }
            }
            runs++; // the last run, closed by the end of the document
            int bound = 4 + 5 * (4 + runs) + ids.length * width;
            if (record.capacity() < bound) {
                record = ByteBuffer.allocate(Math.max(bound, record.capacity() * 2)).order(ByteOrder.LITTLE_ENDIAN);
            }
            record.clear();
            record.putInt(0); // CRC, filled below
            putVarint(record, ids.length);
            putVarint(record, d.assistantTurns());
            putVarint(record, d.eosMasked());
            putVarint(record, runs);
            int start = 0;
            state = false;
            for (int j = 0; j <= sup.length; j++) {
                if (j == sup.length || sup[j] != state) {
                    putVarint(record, j - start);
                    start = j;
                    state = !state;
                }
            }
            if (width == 2) {
                for (int id : ids) {
                    if ((id >>> 16) != 0) {
                        throw new IllegalStateException("token id " + id + " does not fit the cache's uint16 ids: the tokenizer's "
                                + "vocabulary size is wrong");
                    }
                    record.putShort((short) id);
                }
            } else {
                for (int id : ids) {
                    record.putInt(id);
                }
            }
            int size = record.position();
            crc.reset();
            crc.update(record.array(), 4, size - 4);
            record.putInt(0, (int) crc.getValue());
            out.write(record.array(), 0, size);
            if (count + 1 >= offsets.length) {
                offsets = java.util.Arrays.copyOf(offsets, offsets.length * 2);
            }
            offsets[count++] = position;
            position += size;
        }

        /** Writes the table and footer, flushes to disk and renames the file into place. */
        void commit() throws IOException {
            offsets[count] = position;
            ByteBuffer table = ByteBuffer.allocate(8 * (count + 1)).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i <= count; i++) {
                table.putLong(offsets[i]);
            }
            crc.reset();
            crc.update(table.array());
            ByteBuffer footer = ByteBuffer.allocate(FOOTER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            footer.putInt(count).putLong(position).putInt((int) crc.getValue()).putInt(MAGIC);
            out.write(table.array());
            out.write(footer.array());
            out.close();
            try (FileChannel c = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                c.force(true); // the rename must not publish a file whose bytes are not on disk yet
            }
            CacheFiles.moveIntoPlace(tmp, target);
            committed = true;
        }

        /** Without {@link #commit} (a failed pass), or after a commit that failed: deletes this writer's temporary file. */
        @Override
        public void close() {
            if (!committed) { // committed: the file is the cache now
                discard(out, tmp, null);
            }
        }

        /** Closes the writer's stream (if open) and deletes its temporary file (CacheFiles.deleteTemporary). */
        private static void discard(OutputStream out, Path tmp, Throwable cause) {
            try {
                if (out != null) {
                    out.close();
                }
            } catch (IOException ignored) {
                // the file goes all the same
            }
            CacheFiles.deleteTemporary(tmp, cause);
        }
    }

    /**
     * Opens a cache for reading when its structure checks out against {@code key} and the expected
     * record count; null when it is missing, stale or damaged (the caller rebuilds it).
     */
    static Reader open(Path file, String key, int records, int vocabularySize) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = c.size();
            if (size < FOOTER_BYTES + 16) {
                return null;
            }
            ByteBuffer footer = readFully(c, size - FOOTER_BYTES, FOOTER_BYTES);
            int n = footer.getInt();
            long tableAt = footer.getLong();
            int tableCrc = footer.getInt();
            if (footer.getInt() != MAGIC || n != records || tableAt + 8L * (n + 1) + FOOTER_BYTES != size) {
                return null;
            }
            ByteBuffer headerBytes = readFully(c, 0, (int) Math.min(tableAt, 4 + 4 + 2 + 65_535 + 1)); // writeUTF holds <= 65,535 bytes
            int headerEnd;
            int width;
            try (DataInputStream h = new DataInputStream(new ByteArrayInputStream(headerBytes.array()))) {
                if (h.readInt() != MAGIC || h.readInt() != VERSION || !h.readUTF().equals(key)) {
                    return null;
                }
                width = h.readByte();
                headerEnd = headerBytes.capacity() - h.available();
            }
            if (width != idWidth(vocabularySize)) {
                return null;
            }
            ByteBuffer table = readFully(c, tableAt, 8 * (n + 1));
            CRC32C crc = new CRC32C();
            crc.update(table.array());
            if ((int) crc.getValue() != tableCrc) {
                return null;
            }
            long[] offsets = new long[n + 1];
            for (int i = 0; i <= n; i++) {
                offsets[i] = table.getLong();
                if (i > 0 && offsets[i] <= offsets[i - 1]) {
                    return null;
                }
            }
            if (offsets[0] != headerEnd || offsets[n] != tableAt) {
                return null;
            }
            return new Reader(file, offsets, width);
        } catch (IOException | RuntimeException e) {
            return null; // unreadable or malformed: rebuilt, not trusted
        }
    }

    /** The documents of one cache: the offset table in memory, the records read on demand. */
    static final class Reader {
        final Path file;
        private final long[] offsets;
        private final int width;

        private Reader(Path file, long[] offsets, int width) {
            this.file = file;
            this.offsets = offsets;
            this.width = width;
        }

        int records() {
            return offsets.length - 1;
        }

        /** Bytes of the documents (without header, table and footer). */
        long dataBytes() {
            return offsets[offsets.length - 1] - offsets[0];
        }

        /**
         * Document {@code i} with a positional read on {@code channel} (a handle of this file owned
         * by the caller), into {@code scratch} when it is large enough; returns the document.
         */
        Document read(int i, FileChannel channel, ByteBuffer[] scratch) {
            int size = (int) (offsets[i + 1] - offsets[i]);
            ByteBuffer b = scratch[0];
            if (b == null || b.capacity() < size) {
                b = ByteBuffer.allocate(Math.max(size, 1 << 12)).order(ByteOrder.LITTLE_ENDIAN);
                scratch[0] = b;
            }
            b.clear().limit(size);
            try {
                long pos = offsets[i];
                while (b.hasRemaining()) {
                    if (channel.read(b, pos + b.position()) < 0) {
                        throw damaged(i, "the file ends early");
                    }
                }
            } catch (IOException e) {
                throw new InputException(file + ": cannot read the token cache: " + e.getMessage(), e);
            }
            b.flip();
            CRC32C crc = new CRC32C();
            crc.update(b.array(), 4, size - 4);
            if (b.getInt() != (int) crc.getValue()) {
                throw damaged(i, "its checksum does not match");
            }
            try {
                int length = getVarint(b);
                int turns = getVarint(b);
                int eosMasked = getVarint(b);
                int runs = getVarint(b);
                boolean[] supervised = new boolean[length];
                int at = 0;
                boolean state = false;
                for (int r = 0; r < runs; r++) {
                    int run = getVarint(b);
                    if (state) {
                        java.util.Arrays.fill(supervised, at, at + run, true);
                    }
                    at += run;
                    state = !state;
                }
                if (at != length || b.remaining() != length * width) {
                    throw damaged(i, "its mask and ids do not add up to its length");
                }
                int[] ids = new int[length];
                if (width == 2) {
                    for (int j = 0; j < length; j++) {
                        ids[j] = b.getShort() & 0xffff;
                    }
                } else {
                    for (int j = 0; j < length; j++) {
                        ids[j] = b.getInt();
                    }
                }
                return new Document(ids, supervised, turns, eosMasked);
            } catch (RuntimeException e) {
                if (e instanceof InputException ie) {
                    throw ie;
                }
                throw damaged(i, "it does not decode (" + e + ")");
            }
        }

        private InputException damaged(int i, String why) {
            return new InputException(file + ": the token cache is damaged at record " + i + " (" + why + "); delete " + file
                    + " and it is rebuilt on the next run");
        }
    }

    private static ByteBuffer readFully(FileChannel c, long at, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            if (c.read(b, at + b.position()) < 0) {
                throw new IOException("short file");
            }
        }
        b.flip();
        return b;
    }

    /** LEB128: 7 bits a byte, high bit set on every byte but the last. */
    static void putVarint(ByteBuffer b, int v) {
        while ((v & ~0x7f) != 0) {
            b.put((byte) ((v & 0x7f) | 0x80));
            v >>>= 7;
        }
        b.put((byte) v);
    }

    static int getVarint(ByteBuffer b) {
        int v = 0;
        for (int shift = 0; shift < 35; shift += 7) {
            int x = b.get();
            v |= (x & 0x7f) << shift;
            if ((x & 0x80) == 0) {
                if (v < 0) {
                    throw new IllegalStateException("negative varint");
                }
                return v;
            }
        }
        throw new IllegalStateException("varint longer than 5 bytes");
    }
}
