package io.anneal.datamix.parquet;

import io.airlift.compress.MalformedInputException;
import io.airlift.compress.lz4.Lz4Decompressor;
import io.airlift.compress.snappy.SnappyDecompressor;
import io.airlift.compress.zstd.ZstdDecompressor;
import io.anneal.api.InputException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.zip.GZIPInputStream;
import org.apache.parquet.format.ColumnMetaData;
import org.apache.parquet.format.CompressionCodec;
import org.apache.parquet.format.DataPageHeader;
import org.apache.parquet.format.DataPageHeaderV2;
import org.apache.parquet.format.Encoding;
import org.apache.parquet.format.PageHeader;
import org.apache.parquet.format.Type;
import shaded.parquet.org.apache.thrift.TConfiguration;
import shaded.parquet.org.apache.thrift.TException;
import shaded.parquet.org.apache.thrift.protocol.TCompactProtocol;
import shaded.parquet.org.apache.thrift.transport.TIOStreamTransport;
import shaded.parquet.org.apache.thrift.transport.TTransportException;

/**
 * The entries of one string (BYTE_ARRAY) column chunk, one page in memory at a time: for each entry
 * its repetition level, definition level and, when defined, its value. Follows the Parquet format
 * specification (Encodings.md, README "Data Pages"): data pages v1 and v2; levels in the RLE /
 * bit-packing hybrid; values PLAIN, dictionary (PLAIN_DICTIONARY, RLE_DICTIONARY),
 * DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY; codecs uncompressed, Snappy, gzip, Zstd and LZ4_RAW.
 */
public final class ColumnCursor {
    private final ParquetFile file;
    private final int rowGroup;
    private final ParquetFile.Node leaf;
    private final CompressionCodec codec;
    private final long end;
    private long position;
    private long entriesLeft;
    private String[] dictionary;

    // The current page: levels of every entry, values of the defined ones.
    private int[] repetition = new int[0];
    private int[] definition = new int[0];
    private String[] values = new String[0];
    private int entries;
    private int entry = -1;
    private int valueIndex;
    private int dataPages;

    /** The current entry (after {@link #next()}). */
    public int rep;
    public int def;
    /** Its value when {@code def == maxDefinition}, else null. */
    public String value;

    ColumnCursor(ParquetFile file, int rowGroup, ParquetFile.Node leaf, ColumnMetaData md) {
        this.file = file;
        this.rowGroup = rowGroup;
        this.leaf = leaf;
        if (md.getType() != Type.BYTE_ARRAY) {
            throw new InputException(file.path + ": column " + leaf.dottedPath() + ": expected strings (binary), found " + md.getType());
        }
        this.codec = md.getCodec();
        long start = md.getData_page_offset();
        if (md.isSetDictionary_page_offset() && md.getDictionary_page_offset() > 0 && md.getDictionary_page_offset() < start) {
            start = md.getDictionary_page_offset();
        }
        this.position = start;
        this.end = start + md.getTotal_compressed_size();
        this.entriesLeft = md.getNum_values();
    }

    /** The repetition level of the next entry, or -1 at the end of the chunk. */
    public int peekRepetition() {
        if (entry + 1 >= entries && !loadPage()) {
            return -1;
        }
        return repetition[entry + 1];
    }

    /** Moves to the next entry; false at the end of the chunk. */
    public boolean next() {
        if (entry + 1 >= entries && !loadPage()) {
            return false;
        }
        entry++;
        rep = repetition[entry];
        def = definition[entry];
        value = def == leaf.maxDefinition ? values[valueIndex++] : null;
        return true;
    }

    private InputException corrupt(String what) {
        return new InputException(file.path + ": row group " + rowGroup + ", column " + leaf.dottedPath() + ": " + what
                + " (a damaged file, or a writer this reader does not follow)");
    }

    /** Reads pages until a data page with entries is loaded; false when the chunk is done. */
    private boolean loadPage() {
        while (entriesLeft > 0) {
            if (position >= end) {
                throw corrupt("the column chunk ends with " + entriesLeft + " entries still expected");
            }
            PageHeader header;
            byte[] page;
            try {
                PositionedInput in = new PositionedInput(file, position, end);
                header = readPageHeader(in, Math.min(end, file.size) - position);
                position = in.position();
                if (header.getCompressed_page_size() < 0 || header.getCompressed_page_size() > end - position) {
                    throw corrupt("a page of " + header.getCompressed_page_size() + " bytes at byte " + position
                            + " runs past its column chunk (" + (end - position) + " bytes left)");
                }
                checkUncompressedSize(header.getUncompressed_page_size(), header.getCompressed_page_size());
                page = new byte[header.getCompressed_page_size()];
                ParquetFile.readFully(file.channel, position, page, 0, page.length);
                position += page.length;
            } catch (IOException | RuntimeException e) {
                if (e instanceof InputException ie) {
                    throw ie;
                }
                throw corrupt("cannot read a page header at byte " + position + ": " + e.getMessage());
            }
            try {
                // a data page of 0 entries is skipped (found by the long fuzz run: the cursor then
                // read entry 0 of an empty page)
                if (decodePage(header, page) && entries > 0) {
                    return true;
                }
            } catch (InputException e) {
                throw e;
            } catch (RuntimeException e) {
                // found by DataParsersFuzzTest: damaged levels and values ended as IllegalStateException or
                // IndexOutOfBoundsException from the decoders; a damaged file is bad input naming the column
                throw corrupt("a page does not decode (" + e.getMessage() + ")");
            }
        }
        return false;
    }

    /**
     * Reads a page header (Thrift compact) of at most {@code bytesLeft} bytes, what is left of the column
     * chunk in the file. Thrift allocates a string, binary or list at the length its header claims before
     * reading it, and parquet-format's {@code Util.readPageHeader} lets a claim reach 100 MB (found by the
     * long fuzz run: page statistics claiming an 88 MB min_value in a 4 KB file); here a claim longer than
     * {@code bytesLeft} is refused before anything is allocated.
     */
    private static PageHeader readPageHeader(InputStream in, long bytesLeft) throws IOException {
        int limit = (int) Math.max(1, Math.min(Integer.MAX_VALUE, bytesLeft));
        try {
            TConfiguration configuration = new TConfiguration(limit, limit, TConfiguration.DEFAULT_RECURSION_DEPTH);
            TIOStreamTransport transport = new TIOStreamTransport(configuration, in);
            PageHeader header = new PageHeader();
            header.read(new TCompactProtocol(transport));
            return header;
        } catch (TTransportException e) {
            // Thrift's words for a claim past the limit: "Message size exceeds limit: <limit>"
            boolean claim = e.getMessage() != null && e.getMessage().startsWith("Message size exceeds limit");
            throw new IOException(claim ? "it claims a field longer than the " + limit + " bytes left in its column chunk"
                    : e.getMessage(), e);
        } catch (TException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /**
     * The most a page may decompress to: DEFLATE's largest ratio (1032:1, zlib's technical notes) of its
     * compressed bytes, plus 1 MiB; a header claiming more is damage, refused before anything is allocated.
     */
    private void checkUncompressedSize(int uncompressed, int compressed) {
        long most = 1032L * compressed + (1 << 20);
        if (uncompressed < 0 || uncompressed > most) {
            throw corrupt("a page of " + compressed + " compressed bytes claims " + uncompressed + " uncompressed bytes "
                    + "(expected at most " + most + ")");
        }
    }

    /** Decodes one page; true when it was a data page with entries. */
    private boolean decodePage(PageHeader header, byte[] page) {
            switch (header.getType()) {
                case DICTIONARY_PAGE -> {
                    byte[] plain = decompress(page, 0, page.length, header.getUncompressed_page_size());
                    int n = header.getDictionary_page_header().getNum_values();
                    if (n < 0 || n > plain.length / 4) {
                        throw corrupt("a dictionary page of " + plain.length + " bytes claims " + n + " values (each takes 4 bytes or more)");
                    }
                    dictionary = new String[n];
                    plain(plain, 0, plain.length, dictionary, n);
                }
                case DATA_PAGE -> {
                    DataPageHeader h = header.getData_page_header();
                    byte[] data = decompress(page, 0, page.length, header.getUncompressed_page_size());
                    int n = h.getNum_values();
                    int at = 0;
                    allocate(n);
                    if (leaf.maxRepetition > 0) {
                        at = levelsV1(data, at, h.getRepetition_level_encoding(), leaf.maxRepetition, repetition, n);
                    } else {
                        java.util.Arrays.fill(repetition, 0, n, 0);
                    }
                    if (leaf.maxDefinition > 0) {
                        at = levelsV1(data, at, h.getDefinition_level_encoding(), leaf.maxDefinition, definition, n);
                    } else {
                        java.util.Arrays.fill(definition, 0, n, 0);
                    }
                    decodeValues(data, at, data.length, h.getEncoding(), n);
                    return true;
                }
                case DATA_PAGE_V2 -> {
                    DataPageHeaderV2 h = header.getData_page_header_v2();
                    int n = h.getNum_values();
                    int repBytes = h.getRepetition_levels_byte_length();
                    int defBytes = h.getDefinition_levels_byte_length();
                    allocate(n);
                    if (leaf.maxRepetition > 0) {
                        Encodings.hybrid(page, 0, repBytes, Encodings.bitWidth(leaf.maxRepetition), repetition, n);
                    } else {
                        java.util.Arrays.fill(repetition, 0, n, 0);
                    }
                    if (leaf.maxDefinition > 0) {
                        Encodings.hybrid(page, repBytes, repBytes + defBytes, Encodings.bitWidth(leaf.maxDefinition), definition, n);
                    } else {
                        java.util.Arrays.fill(definition, 0, n, 0);
                    }
                    int from = repBytes + defBytes;
                    byte[] data = page;
                    int to = page.length;
                    if (!h.isSetIs_compressed() || h.isIs_compressed()) {
                        data = decompress(page, from, page.length - from, header.getUncompressed_page_size() - from);
                        from = 0;
                        to = data.length;
                    }
                    decodeValues(data, from, to, h.getEncoding(), n);
                    return true;
                }
                default -> {
                    // index and other pages carry nothing this reader needs
                }
            }
            return false;
    }

    /** Data pages read so far (pages stream one at a time; a test checks a chunk of several). */
    public int dataPages() {
        return dataPages;
    }

    /** The most entries one data page may hold: parquet-mr writes at most 20,000 rows a page, Arrow about 1 MB of values. */
    static final int MAX_PAGE_ENTRIES = 1 << 22;

    private void allocate(int n) {
        if (n < 0 || n > MAX_PAGE_ENTRIES || n > entriesLeft) {
            throw corrupt("a data page claims " + n + " entries; expected at most " + Math.min(MAX_PAGE_ENTRIES, entriesLeft)
                    + " (the column chunk's entries left, and " + MAX_PAGE_ENTRIES + " a page)");
        }
        dataPages++;
        if (repetition.length < n) {
            repetition = new int[n];
            definition = new int[n];
        }
        entries = n;
        entry = -1;
        valueIndex = 0;
        entriesLeft -= n;
        if (entriesLeft < 0) {
            throw corrupt("the pages hold more entries than the column chunk's metadata");
        }
    }

    private int levelsV1(byte[] data, int at, Encoding encoding, int maxLevel, int[] out, int n) {
        if (encoding != Encoding.RLE) {
            throw corrupt("levels encoded as " + encoding + "; expected RLE (BIT_PACKED levels are deprecated and not supported)");
        }
        int length = Encodings.intLE(data, at);
        Encodings.hybrid(data, at + 4, at + 4 + length, Encodings.bitWidth(maxLevel), out, n);
        return at + 4 + length;
    }

    private void decodeValues(byte[] data, int from, int to, Encoding encoding, int entryCount) {
        int defined = 0;
        for (int i = 0; i < entryCount; i++) {
            if (definition[i] == leaf.maxDefinition) {
                defined++;
            }
        }
        if (values.length < defined) {
            values = new String[Math.max(defined, values.length * 2)];
        }
        try {
            switch (encoding) {
                case PLAIN -> plain(data, from, to, values, defined);
                case PLAIN_DICTIONARY, RLE_DICTIONARY -> {
                    if (dictionary == null) {
                        throw corrupt("a dictionary-encoded page without a dictionary page");
                    }
                    int[] ids = new int[defined];
                    if (defined > 0) {
                        Encodings.hybrid(data, from + 1, to, data[from] & 0xff, ids, defined);
                    }
                    for (int i = 0; i < defined; i++) {
                        if (ids[i] < 0 || ids[i] >= dictionary.length) {
                            throw corrupt("dictionary index " + ids[i] + " outside a dictionary of " + dictionary.length);
                        }
                        values[i] = dictionary[ids[i]];
                    }
                }
                case DELTA_LENGTH_BYTE_ARRAY -> {
                    int[] lengths = new int[defined];
                    int at = Encodings.deltaBinaryPacked(data, from, lengths, defined);
                    for (int i = 0; i < defined; i++) {
                        values[i] = new String(data, at, lengths[i], StandardCharsets.UTF_8);
                        at += lengths[i];
                    }
                }
                case DELTA_BYTE_ARRAY -> {
                    int[] prefixes = new int[defined];
                    int[] lengths = new int[defined];
                    int at = Encodings.deltaBinaryPacked(data, from, prefixes, defined);
                    at = Encodings.deltaBinaryPacked(data, at, lengths, defined);
                    byte[] previous = new byte[0];
                    for (int i = 0; i < defined; i++) {
                        byte[] v = new byte[prefixes[i] + lengths[i]];
                        System.arraycopy(previous, 0, v, 0, prefixes[i]);
                        System.arraycopy(data, at, v, prefixes[i], lengths[i]);
                        at += lengths[i];
                        values[i] = new String(v, StandardCharsets.UTF_8);
                        previous = v;
                    }
                }
                default -> throw corrupt("values encoded as " + encoding + "; expected PLAIN, dictionary, DELTA_LENGTH_BYTE_ARRAY "
                        + "or DELTA_BYTE_ARRAY for strings");
            }
        } catch (IndexOutOfBoundsException | IllegalStateException e) {
            throw corrupt("a page's values do not decode: " + e.getMessage());
        }
    }

    /** PLAIN byte arrays: a 4-byte little-endian length, then the bytes (UTF-8). */
    private void plain(byte[] data, int from, int to, String[] out, int n) {
        int at = from;
        for (int i = 0; i < n; i++) {
            int length = Encodings.intLE(data, at);
            if (length < 0 || at + 4 + length > to) {
                throw corrupt("a PLAIN value runs past its page");
            }
            out[i] = new String(data, at + 4, length, StandardCharsets.UTF_8);
            at += 4 + length;
        }
    }

    private byte[] decompress(byte[] in, int offset, int length, int uncompressed) {
        if (codec == CompressionCodec.UNCOMPRESSED) {
            return offset == 0 && length == in.length ? in : java.util.Arrays.copyOfRange(in, offset, offset + length);
        }
        byte[] out = new byte[uncompressed];
        try {
            int n;
            switch (codec) {
                case SNAPPY -> n = new SnappyDecompressor().decompress(in, offset, length, out, 0, out.length);
                case ZSTD -> n = new ZstdDecompressor().decompress(in, offset, length, out, 0, out.length);
                case LZ4_RAW -> n = new Lz4Decompressor().decompress(in, offset, length, out, 0, out.length);
                case GZIP -> {
                    try (InputStream gz = new GZIPInputStream(new ByteArrayInputStream(in, offset, length))) {
                        n = gz.readNBytes(out, 0, out.length);
                    }
                }
                default -> throw new InputException(file.path + ": column " + leaf.dottedPath() + " is compressed with " + codec
                        + "; expected uncompressed, SNAPPY, GZIP, ZSTD or LZ4_RAW (rewrite the file with one of them)");
            }
            if (n != uncompressed) {
                throw corrupt("a page decompressed to " + n + " bytes, its header says " + uncompressed);
            }
            return out;
        } catch (MalformedInputException | IOException e) {
            throw corrupt("a " + codec + " page does not decompress: " + e.getMessage());
        } catch (LinkageError e) {
            // aircompressor reads memory through sun.misc.Unsafe; a JVM started without jdk.unsupported lacks it
            throw new InputException(file.path + ": cannot decompress " + codec + " pages: " + e + " (the JVM needs the module "
                    + "jdk.unsupported: bin/anneal adds it; with another launcher add --add-modules jdk.unsupported)", e);
        }
    }

    /** An InputStream over the file from a position, for the Thrift page header (which reads only its own bytes). */
    private static final class PositionedInput extends InputStream {
        private final ParquetFile file;
        private final long limit;
        private final byte[] buffer = new byte[256];
        private long bufferStart;
        private int bufferLength;
        private long position;

        PositionedInput(ParquetFile file, long position, long limit) {
            this.file = file;
            this.position = position;
            this.bufferStart = position;
            this.limit = limit;
        }

        long position() {
            return position;
        }

        @Override
        public int read() throws IOException {
            if (position >= bufferStart + bufferLength && !fill()) {
                return -1;
            }
            return buffer[(int) (position++ - bufferStart)] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (len == 0) {
                return 0;
            }
            if (position >= bufferStart + bufferLength && !fill()) {
                return -1;
            }
            int n = (int) Math.min(len, bufferStart + bufferLength - position);
            System.arraycopy(buffer, (int) (position - bufferStart), b, off, n);
            position += n;
            return n;
        }

        private boolean fill() throws IOException {
            int n = (int) Math.min(buffer.length, limit - position);
            if (n <= 0) {
                return false;
            }
            ParquetFile.readFully(file.channel, position, buffer, 0, n);
            bufferStart = position;
            bufferLength = n;
            return true;
        }
    }
}
