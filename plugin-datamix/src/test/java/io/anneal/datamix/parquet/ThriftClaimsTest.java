package io.anneal.datamix.parquet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import io.anneal.testkit.ParserContract;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.apache.parquet.format.ColumnChunk;
import org.apache.parquet.format.ColumnMetaData;
import org.apache.parquet.format.CompressionCodec;
import org.apache.parquet.format.DataPageHeader;
import org.apache.parquet.format.Encoding;
import org.apache.parquet.format.FieldRepetitionType;
import org.apache.parquet.format.FileMetaData;
import org.apache.parquet.format.PageHeader;
import org.apache.parquet.format.PageType;
import org.apache.parquet.format.RowGroup;
import org.apache.parquet.format.SchemaElement;
import org.apache.parquet.format.Statistics;
import org.apache.parquet.format.Type;
import org.apache.parquet.format.Util;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Thrift (the footer and each page header) allocates a string or binary at the length it claims
 * before reading it; parquet-format's Util lets a claim reach 100 MB. The long fuzz run found page
 * statistics claiming an 88 MB min_value in a 4 KB file. Here a hand-made file of one column
 * {@code required binary text} and one row "hello", written with parquet-format's own classes, whose
 * page header or footer has one length changed to 80,000,000 (and nothing after it): refused naming
 * the file (and row group and column), allocating at most a fifth of the claim.
 */
class ThriftClaimsTest {
    static final int CLAIM = 80_000_000;
    static final byte[] MARKER = "MARKER-M".getBytes(StandardCharsets.US_ASCII);

    @TempDir
    Path tmp;

    /** The page header of one PLAIN value of {@code pageBytes}, with {@link #MARKER} as its statistics' min_value. */
    static byte[] pageHeader(int pageBytes) throws IOException {
        PageHeader header = new PageHeader(PageType.DATA_PAGE, pageBytes, pageBytes);
        DataPageHeader data = new DataPageHeader(1, Encoding.PLAIN, Encoding.RLE, Encoding.RLE);
        Statistics statistics = new Statistics();
        statistics.setMin_value(MARKER);
        data.setStatistics(statistics);
        header.setData_page_header(data);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Util.writePageHeader(header, out);
        return out.toByteArray();
    }

    /** The footer of that file: the chunk of {@code chunkBytes} at byte 4, with {@link #MARKER} as created_by. */
    static byte[] footer(int chunkBytes) throws IOException {
        SchemaElement root = new SchemaElement("schema");
        root.setNum_children(1);
        SchemaElement leaf = new SchemaElement("text");
        leaf.setType(Type.BYTE_ARRAY);
        leaf.setRepetition_type(FieldRepetitionType.REQUIRED);
        ColumnMetaData md = new ColumnMetaData(Type.BYTE_ARRAY, List.of(Encoding.PLAIN), List.of("text"), CompressionCodec.UNCOMPRESSED,
                1, chunkBytes, chunkBytes, 4);
        ColumnChunk chunk = new ColumnChunk(4);
        chunk.setMeta_data(md);
        FileMetaData meta = new FileMetaData(1, List.of(root, leaf), 1, List.of(new RowGroup(List.of(chunk), chunkBytes, 1)));
        meta.setCreated_by(new String(MARKER, StandardCharsets.US_ASCII));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Util.writeFileMetaData(meta, out);
        return out.toByteArray();
    }

    /** Thrift compact bytes up to the marker's length, which now claims {@code claim} bytes; nothing follows. */
    static byte[] claiming(byte[] thrift, int claim) {
        int at = indexOf(thrift, MARKER);
        assertEquals(MARKER.length, thrift[at - 1], "the marker's length is one varint byte before it");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(thrift, 0, at - 1);
        for (int v = claim; ; v >>>= 7) { // unsigned LEB128, as Thrift compact writes lengths
            if ((v & ~0x7f) == 0) {
                out.write(v);
                break;
            }
            out.write((v & 0x7f) | 0x80);
        }
        return out.toByteArray();
    }

    static int indexOf(byte[] data, byte[] part) {
        for (int i = 0; i + part.length <= data.length; i++) {
            if (Arrays.equals(data, i, i + part.length, part, 0, part.length)) {
                return i;
            }
        }
        throw new AssertionError("marker not found");
    }

    Path write(String name, byte[] header, byte[] page, byte[] footer) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes("PAR1".getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(header);
        out.writeBytes(page);
        out.writeBytes(footer);
        out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(footer.length).array());
        out.writeBytes("PAR1".getBytes(StandardCharsets.US_ASCII));
        return Files.write(tmp.resolve(name), out.toByteArray());
    }

    static String firstValue(Path file) {
        try (ParquetFile parquet = ParquetFile.open(file)) {
            ColumnCursor cursor = parquet.column(0, parquet.root().child("text"));
            assertTrue(cursor.next());
            return cursor.value;
        }
    }

    /** Reading the first value under the fuzzing contract with a cap of 16 MiB, a fifth of the claim; the refusal's message. */
    static String refusal(Path file) {
        ParserContract contract = new ParserContract("hand-made Parquet file", 5_000, 16L << 20, 0);
        String[] message = new String[1];
        boolean accepted = contract.check(0, () -> {
            try {
                return firstValue(file);
            } catch (InputException e) {
                message[0] = e.getMessage();
                throw e;
            }
        }, file::toString);
        assertFalse(accepted, file + " was read");
        return message[0];
    }

    @Test
    void aLengthClaimedInAPageHeaderOrTheFooterIsBoundedByTheBytesThere() throws IOException {
        byte[] page = ByteBuffer.allocate(9).order(ByteOrder.LITTLE_ENDIAN).putInt(5)
                .put("hello".getBytes(StandardCharsets.US_ASCII)).array(); // PLAIN: a 4-byte length, then the bytes
        byte[] header = pageHeader(page.length);
        // the file as written reads
        assertEquals("hello", firstValue(write("good.parquet", header, page, footer(header.length + page.length))));

        // a page header whose statistics claim an 80 MB min_value: refused before the 80 MB are allocated
        byte[] damaged = claiming(header, CLAIM);
        int chunk = damaged.length + page.length;
        Path file = write("page-claim.parquet", damaged, page, footer(chunk));
        assertEquals(file + ": row group 0, column text: cannot read a page header at byte 4: it claims a field longer than the "
                + chunk + " bytes left in its column chunk (a damaged file, or a writer this reader does not follow)", refusal(file));

        // the same claim in the footer (created_by): bounded by the footer's length
        Path footerClaim = write("footer-claim.parquet", header, page, claiming(footer(header.length + page.length), CLAIM));
        String message = refusal(footerClaim);
        assertTrue(message.startsWith(footerClaim + ": expected a Parquet footer, found undecodable bytes: "), message);
    }
}
