package io.anneal.onnx.graph;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builds one ONNX model (a {@code ModelProto} holding a {@code GraphProto}) node by node and
 * serialises it. Field numbers are those of onnx/onnx.proto (IR version 8, the IR of ONNX 1.12,
 * which carries opset 17); only standard ops of the default domain are used, so
 * {@code onnx.checker.check_model(full_check=True)} and any runtime accept the file.
 */
public final class OnnxGraph {
    /** IR version 8 (onnx.proto's Version enum, ONNX 1.10-1.12). */
    public static final long IR_VERSION = 8;
    /** The default-domain operator set the graphs are written against. */
    public static final long OPSET = 17;

    // TensorProto.DataType (onnx.proto)
    public static final int FLOAT = 1;
    public static final int INT64 = 7;

    // AttributeProto.AttributeType (onnx.proto)
    private static final int ATTR_FLOAT = 1;
    private static final int ATTR_INT = 2;
    private static final int ATTR_INTS = 7;

    private final String name;
    private final List<ProtoWriter> nodes = new ArrayList<>();
    private final List<ProtoWriter> initializers = new ArrayList<>();
    private final List<ProtoWriter> inputs = new ArrayList<>();
    private final List<ProtoWriter> outputs = new ArrayList<>();
    private final Set<String> externalNames = new LinkedHashSet<>();
    private final WeightFile weights;
    private int counter;

    /** {@code weights}: where the large tensors live (null for a graph with inline constants only). */
    public OnnxGraph(String name, WeightFile weights) {
        this.name = name;
        this.weights = weights;
    }

    /** A node attribute: int, float or list of ints. */
    public record Attr(String name, int type, long i, float f, long[] ints) {
        public static Attr i(String name, long value) {
            return new Attr(name, ATTR_INT, value, 0, null);
        }

        public static Attr f(String name, float value) {
            return new Attr(name, ATTR_FLOAT, 0, value, null);
        }

        public static Attr ints(String name, long... values) {
            return new Attr(name, ATTR_INTS, 0, 0, values);
        }

        ProtoWriter proto() {
            // AttributeProto: name = 1, f = 2, i = 3, ints = 8, type = 20
            ProtoWriter a = new ProtoWriter().string(1, name).int64(20, type);
            switch (type) {
                case ATTR_FLOAT -> a.float32(2, f);
                case ATTR_INT -> a.int64(3, i);
                default -> a.packedInt64(8, ints);
            }
            return a;
        }
    }

    /** A graph input; a dim is a Long (fixed) or a String (a named dynamic axis). */
    public String input(String valueName, int elemType, Object... dims) {
        inputs.add(valueInfo(valueName, elemType, dims));
        return valueName;
    }

    /** Marks {@code value} as a graph output named {@code outputName} (an Identity renames it). */
    public void output(String outputName, String value, int elemType, Object... dims) {
        nodes.add(node("Identity", new String[] {value}, new String[] {outputName}));
        outputs.add(valueInfo(outputName, elemType, dims));
    }

    /** A node with one output; returns the output's name. */
    public String op(String opType, String[] in, Attr... attrs) {
        return ops(opType, 1, in, attrs)[0];
    }

    /** Shorthand for a node with one output and inputs given inline. */
    public String op(String opType, String a, String... more) {
        String[] in = new String[more.length + 1];
        in[0] = a;
        System.arraycopy(more, 0, in, 1, more.length);
        return op(opType, in);
    }

    /** A node with {@code count} outputs. */
    public String[] ops(String opType, int count, String[] in, Attr... attrs) {
        String[] out = new String[count];
        int id = counter++;
        for (int k = 0; k < count; k++) {
            out[k] = opType.toLowerCase() + "_" + id + (count > 1 ? "_" + k : "");
        }
        ProtoWriter n = node(opType, in, out);
        for (Attr a : attrs) {
            n.message(5, a.proto());
        }
        nodes.add(n);
        return out;
    }

    private ProtoWriter node(String opType, String[] in, String[] out) {
        // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5
        ProtoWriter n = new ProtoWriter();
        for (String s : in) {
            n.string(1, s);
        }
        for (String s : out) {
            n.string(2, s);
        }
        n.string(3, opType + "_" + nodes.size());
        n.string(4, opType);
        return n;
    }

    /** An int64 constant (1-D unless {@code scalar}). */
    public String int64s(long... values) {
        ByteBuffer b = ByteBuffer.allocate(8 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long v : values) {
            b.putLong(v);
        }
        return inline(INT64, new long[] {values.length}, b.array());
    }

    /** An int64 scalar constant (rank 0), for the inputs the spec wants as 0-D (Range, Trilu's k, CumSum's axis). */
    public String int64Scalar(long value) {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value);
        return inline(INT64, new long[0], b.array());
    }

    /** A float32 constant of shape {@code dims}. */
    public String floats(long[] dims, float... values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        return inline(FLOAT, dims, b.array());
    }

    /** A float32 scalar constant (rank 0). */
    public String scalar(float value) {
        return floats(new long[0], value);
    }

    private String inline(int dataType, long[] dims, byte[] raw) {
        String constant = "const_" + counter++;
        // TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9
        ProtoWriter t = new ProtoWriter().packedInt64(1, dims).int64(2, dataType).string(8, constant).bytes(9, raw);
        initializers.add(t);
        return constant;
    }

    /** The weight {@code weightName} of the weight file, as an initializer of this graph (added once). */
    public String weight(String weightName) {
        if (externalNames.add(weightName)) {
            WeightFile.Entry e = weights.get(weightName);
            // TensorProto: dims = 1, data_type = 2, name = 8, external_data = 13 (StringStringEntryProto:
            // key = 1, value = 2), data_location = 14 (EXTERNAL = 1)
            ProtoWriter t = new ProtoWriter().packedInt64(1, e.dims()).int64(2, FLOAT).string(8, weightName);
            t.message(13, entry("location", weights.location()));
            t.message(13, entry("offset", Long.toString(e.offset())));
            t.message(13, entry("length", Long.toString(e.length())));
            t.int64(14, 1);
            initializers.add(t);
        }
        return weightName;
    }

    private static ProtoWriter entry(String key, String value) {
        return new ProtoWriter().string(1, key).string(2, value);
    }

    private static ProtoWriter valueInfo(String valueName, int elemType, Object... dims) {
        // TensorShapeProto.Dimension: dim_value = 1, dim_param = 2; TensorShapeProto: dim = 1
        ProtoWriter shape = new ProtoWriter();
        for (Object d : dims) {
            ProtoWriter dim = new ProtoWriter();
            if (d instanceof String param) {
                dim.string(2, param);
            } else {
                dim.int64(1, ((Number) d).longValue());
            }
            shape.message(1, dim);
        }
        // TypeProto.Tensor: elem_type = 1, shape = 2; TypeProto: tensor_type = 1; ValueInfoProto: name = 1, type = 2
        ProtoWriter tensor = new ProtoWriter().int64(1, elemType).message(2, shape);
        ProtoWriter type = new ProtoWriter().message(1, tensor);
        return new ProtoWriter().string(1, valueName).message(2, type);
    }

    /** The serialised ModelProto. */
    public byte[] toModelBytes(String producerVersion, Map<String, String> metadata) {
        // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12
        ProtoWriter graph = new ProtoWriter();
        nodes.forEach(n -> graph.message(1, n));
        graph.string(2, name);
        initializers.forEach(t -> graph.message(5, t));
        inputs.forEach(v -> graph.message(11, v));
        outputs.forEach(v -> graph.message(12, v));
        // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, graph = 7,
        // opset_import = 8 (OperatorSetIdProto: domain = 1, version = 2), metadata_props = 14
        ProtoWriter model = new ProtoWriter().int64(1, IR_VERSION).string(2, "anneal").string(3, producerVersion);
        model.message(7, graph);
        model.message(8, new ProtoWriter().string(1, "").int64(2, OPSET));
        metadata.forEach((k, v) -> model.message(14, entry(k, v)));
        return model.toByteArray();
    }
}
