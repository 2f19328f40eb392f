package io.anneal.onnx.graph;

/** One-field messages of {@link ProtoWriter}, for the tests. */
final class ProtoAccess {
    private ProtoAccess() {
    }

    static byte[] int64(int field, long v) {
        return new ProtoWriter().int64(field, v).toByteArray();
    }

    static byte[] string(int field, String v) {
        return new ProtoWriter().string(field, v).toByteArray();
    }

    static byte[] packed(int field, long[] v) {
        return new ProtoWriter().packedInt64(field, v).toByteArray();
    }
}
