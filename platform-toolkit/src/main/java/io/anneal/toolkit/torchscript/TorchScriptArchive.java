package io.anneal.toolkit.torchscript;

import io.anneal.api.Experimental;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Writes a TorchScript archive (what {@code torch.jit.save} writes and {@code torch::jit::load}
 * reads) for a module with no tensors: its TorchScript source as {@code code/__torch__.py} and its
 * primitive attributes (bool, int, float) pickled in {@code data.pkl}. The source stays readable text
 * in the plugin's resources, and the configuration goes in as attributes, so no Python and no
 * generated binary is needed to build or change a block.
 *
 * <p>Format as written by torch 2.x ({@code torch/csrc/jit/serialization/export_module.cpp}):
 * entries {@code <name>/version}, {@code <name>/data.pkl}, {@code <name>/constants.pkl},
 * {@code <name>/code/__torch__.py}, uncompressed. File format version 3 is what torch itself
 * writes for code that uses no operator with a versioned upgrader (div, full, linspace, ...).
 */
@Experimental(since = "1.2", note = "toolkit, not the contract (in io.anneal.api.torchscript before API 1.2 split it off); a TorchScript block in a plugin; the archive format is libtorch's")
public final class TorchScriptArchive {
    private static final String PREFIX = "archive/";

    private TorchScriptArchive() {
    }

    /**
     * @param className  the class the code defines, {@code __torch__.<className>}
     * @param code       TorchScript source of the class
     * @param attributes attribute values in the order the class declares them (Boolean, Integer or Double)
     */
    public static byte[] write(String className, String code, Map<String, Object> attributes) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(bytes)) {
            stored(zip, PREFIX + "version", "3\n".getBytes(StandardCharsets.US_ASCII));
            stored(zip, PREFIX + "data.pkl", modulePickle(className, attributes));
            stored(zip, PREFIX + "constants.pkl", new byte[] {(byte) 0x80, 2, ')', '.'});
            stored(zip, PREFIX + "code/__torch__.py", code.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return bytes.toByteArray();
    }

    private static void stored(ZipOutputStream zip, String name, byte[] data) throws IOException {
        ZipEntry entry = new ZipEntry(name);
        entry.setMethod(ZipEntry.STORED);
        entry.setSize(data.length);
        entry.setCompressedSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        entry.setCrc(crc.getValue());
        entry.setTime(315532800000L); // a fixed time: the same configuration gives the same bytes
        zip.putNextEntry(entry);
        zip.write(data);
        zip.closeEntry();
    }

    /**
     * Pickle protocol 2 of {@code __torch__.<className>()} with its attribute dict, the opcodes torch's
     * unpickler reads for a module object: PROTO, GLOBAL, EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MARK,
     * (BINUNICODE key, value)..., SETITEMS, BUILD, STOP.
     */
    static byte[] modulePickle(String className, Map<String, Object> attributes) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0x80);
        out.write(2);
        writeAscii(out, "c__torch__\n" + className + "\n");
        out.write(')');
        out.write(0x81);
        out.write('}');
        out.write('(');
        for (Map.Entry<String, Object> e : attributes.entrySet()) {
            byte[] key = e.getKey().getBytes(StandardCharsets.UTF_8);
            out.write('X');
            out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(key.length).array());
            out.writeBytes(key);
            Object v = e.getValue();
            if (v instanceof Boolean b) {
                out.write(b ? 0x88 : 0x89);
            } else if (v instanceof Integer i) {
                out.write('J');
                out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(i).array());
            } else if (v instanceof Double d) {
                out.write('G');
                out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.BIG_ENDIAN).putDouble(d).array());
            } else {
                throw new IllegalArgumentException("attribute " + e.getKey() + ": expected Boolean, Integer or Double, found "
                        + (v == null ? "null" : v.getClass().getSimpleName()));
            }
        }
        out.write('u');
        out.write('b');
        out.write('.');
        return out.toByteArray();
    }

    private static void writeAscii(ByteArrayOutputStream out, String s) {
        out.writeBytes(s.getBytes(StandardCharsets.US_ASCII));
    }
}
