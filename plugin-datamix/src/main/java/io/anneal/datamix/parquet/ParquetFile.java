package io.anneal.datamix.parquet;

import io.anneal.api.InputException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.apache.parquet.format.ColumnChunk;
import org.apache.parquet.format.FieldRepetitionType;
import org.apache.parquet.format.FileMetaData;
import org.apache.parquet.format.SchemaElement;
import org.apache.parquet.format.Type;
import org.apache.parquet.format.Util;

/**
 * A Parquet file opened for streaming reads: the footer (Thrift {@code FileMetaData}, decoded by
 * Apache parquet-format-structures), the schema as a tree with each leaf's maximum repetition and
 * definition levels (Dremel; Melnik et al. 2010, and the Parquet format specification), and
 * {@link ColumnCursor}s that read one column chunk of one row group page by page. Nothing is read
 * beyond the footer until a cursor asks for a page, so a file larger than memory streams.
 */
public final class ParquetFile implements AutoCloseable {
    private static final byte[] MAGIC = "PAR1".getBytes(StandardCharsets.US_ASCII);

    final Path path;
    final FileChannel channel;
    /** The file's length in bytes: no page header or page reaches beyond it. */
    final long size;
    private final FileMetaData meta;
    private final Node root;

    /** A schema node: a group (no physical type) or a leaf column. */
    public static final class Node {
        public final String name;
        /** null for the root. */
        public final FieldRepetitionType repetition;
        /** The physical type of a leaf; null for a group. */
        public final Type type;
        public final List<Node> children = new ArrayList<>();
        public final Node parent;
        /** Levels of this node: a value at or above maxDefinition defines it; maxRepetition counts the repeated nodes down to it. */
        public final int maxDefinition;
        public final int maxRepetition;

        Node(SchemaElement e, Node parent) {
            this.name = e.getName();
            this.parent = parent;
            this.repetition = parent == null ? null : e.getRepetition_type();
            this.type = e.isSetType() ? e.getType() : null;
            int def = parent == null ? 0 : parent.maxDefinition;
            int rep = parent == null ? 0 : parent.maxRepetition;
            if (repetition == FieldRepetitionType.OPTIONAL || repetition == FieldRepetitionType.REPEATED) {
                def++;
            }
            if (repetition == FieldRepetitionType.REPEATED) {
                rep++;
            }
            this.maxDefinition = def;
            this.maxRepetition = rep;
        }

        public boolean isGroup() {
            return type == null;
        }

        public Node child(String childName) {
            for (Node c : children) {
                if (c.name.equals(childName)) {
                    return c;
                }
            }
            return null;
        }

        /** The path below the root, dot-separated (as in {@code path_in_schema}). */
        public String dottedPath() {
            return parent == null || parent.parent == null ? name : parent.dottedPath() + "." + name;
        }

        /** The node in the Parquet schema language, e.g. {@code optional group messages { repeated group list {...} }}. */
        public String describe() {
            String head = (repetition == null ? "message" : repetition.name().toLowerCase(java.util.Locale.ROOT)) + " "
                    + (isGroup() ? "group" : type.name().toLowerCase(java.util.Locale.ROOT)) + " " + name;
            if (!isGroup()) {
                return head;
            }
            List<String> parts = new ArrayList<>();
            for (Node c : children) {
                parts.add(c.describe());
            }
            return head + " { " + String.join("; ", parts) + " }";
        }
    }

    private ParquetFile(Path path, FileChannel channel, long size, FileMetaData meta) {
        this.path = path;
        this.channel = channel;
        this.size = size;
        this.meta = meta;
        List<SchemaElement> schema = meta.getSchema();
        if (schema == null || schema.isEmpty()) {
            throw new InputException(path + ": expected a Parquet schema in the footer, found none");
        }
        int[] next = {0};
        this.root = build(schema, next, null);
    }

    private Node build(List<SchemaElement> schema, int[] next, Node parent) {
        if (next[0] >= schema.size()) {
            throw new InputException(path + ": the Parquet footer's schema is truncated");
        }
        SchemaElement e = schema.get(next[0]++);
        Node n = new Node(e, parent);
        int children = e.isSetNum_children() ? e.getNum_children() : 0;
        for (int i = 0; i < children; i++) {
            n.children.add(build(schema, next, n));
        }
        return n;
    }

    /** Opens the file and reads its footer; a file that is not Parquet is an error naming it. */
    public static ParquetFile open(Path path) {
        FileChannel channel;
        try {
            channel = FileChannel.open(path, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new InputException(path + ": expected a Parquet file, found no such file");
        } catch (IOException e) {
            throw new InputException(path + ": cannot open: " + e.getMessage(), e);
        }
        try {
            long size = channel.size();
            byte[] head = new byte[(int) Math.min(4, size)];
            readFully(channel, 0, head, 0, head.length);
            byte[] tail = new byte[8];
            if (size >= 12) {
                readFully(channel, size - 8, tail, 0, 8);
            }
            if (size < 12 || !java.util.Arrays.equals(head, MAGIC) || !java.util.Arrays.equals(tail, 4, 8, MAGIC, 0, 4)) {
                String found = new String(head, StandardCharsets.ISO_8859_1).replaceAll("[^\\x20-\\x7e]", "?");
                if (size >= 12 && java.util.Arrays.equals(tail, 4, 8, "PARE".getBytes(StandardCharsets.US_ASCII), 0, 4)) {
                    throw new InputException(path + ": an encrypted Parquet file (PARE); expected a plain one");
                }
                throw new InputException(path + ": expected a Parquet file (it starts and ends with PAR1), found "
                        + (size < 12 ? size + " bytes" : "a file starting with '" + found + "'"));
            }
            int footerLength = ByteBuffer.wrap(tail, 0, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
            if (footerLength <= 0 || footerLength > size - 12) {
                throw new InputException(path + ": expected a Parquet footer of at most " + (size - 12) + " bytes, found a length of "
                        + footerLength + " (a truncated or damaged file)");
            }
            byte[] footer = new byte[footerLength];
            readFully(channel, size - 8 - footerLength, footer, 0, footerLength);
            FileMetaData meta;
            try {
                // Thrift allocates a string or list at its claimed length before reading it: no claim may pass the
                // footer's own length (Util's default allows 100 MB)
                meta = Util.readFileMetaData(new ByteArrayInputStream(footer), footerLength);
            } catch (IOException | RuntimeException e) {
                throw new InputException(path + ": expected a Parquet footer, found undecodable bytes: " + e.getMessage(), e);
            }
            return new ParquetFile(path, channel, size, meta);
        } catch (IOException | RuntimeException e) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // already failing
            }
            if (e instanceof InputException ie) {
                throw ie;
            }
            throw new InputException(path + ": cannot read the Parquet footer: " + e.getMessage(), e);
        }
    }

    public Path path() {
        return path;
    }

    public Node root() {
        return root;
    }

    public int rowGroups() {
        return meta.getRow_groupsSize();
    }

    public long rows(int rowGroup) {
        return meta.getRow_groups().get(rowGroup).getNum_rows();
    }

    /** A cursor over the values and levels of {@code leaf} in row group {@code rowGroup}. */
    public ColumnCursor column(int rowGroup, Node leaf) {
        String dotted = leaf.dottedPath();
        for (ColumnChunk c : meta.getRow_groups().get(rowGroup).getColumns()) {
            if (c.getMeta_data() != null && String.join(".", c.getMeta_data().getPath_in_schema()).equals(dotted)) {
                return new ColumnCursor(this, rowGroup, leaf, c.getMeta_data());
            }
        }
        throw new InputException(path + ": row group " + rowGroup + " has no column chunk for " + dotted
                + " (a damaged file, or column metadata kept in another file, which is not supported)");
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // a read-only channel loses nothing
        }
    }

    static void readFully(FileChannel channel, long at, byte[] into, int offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(into, offset, length);
        while (b.hasRemaining()) {
            if (channel.read(b, at + (b.position() - offset)) < 0) {
                throw new IOException("the file ends at " + (at + b.position() - offset) + ", expected " + length + " bytes at " + at);
            }
        }
    }
}
