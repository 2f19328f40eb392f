package io.anneal.hybrid.safetensors;

import io.anneal.testkit.InputMutator;
import io.anneal.testkit.ParserContract;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * Fuzzing of safetensors headers (issue 15): bytes go through {@link SafetensorsReader#open} and every
 * floating-point tensor is read back; the contract of {@link ParserContract} holds (success or
 * InputException, 5 s, 64 MiB plus 64 bytes per input byte). The seeds are this project's own
 * versions of the negative cases in huggingface/safetensors' tests (safetensors/src/tensor.rs: a JSON
 * "attack" of ten tensors on one range, trailing bytes after the data, data 2 bytes short, a header
 * length with its high bytes set, an empty file, a header length with nothing after it, a non-UTF-8
 * header, a header that is not JSON, a shape/offset mismatch, shapes whose element count overflows
 * 64 bits) and valid files (a 2x2 I32, an empty shape, a zero-sized tensor, a whitespace-padded header,
 * float tensors with metadata), mutated.
 */
class SafetensorsFuzzTest {
    static final ParserContract CONTRACT = new ParserContract("safetensors header (SafetensorsReader)", 5_000, 64L << 20, 64);
    static final InputMutator MUTATOR = new InputMutator(64 * 1024, List.of("{", "}", "[", "]", ":", ",", "\"", "\"dtype\"",
            "\"shape\"", "\"data_offsets\"", "\"F32\"", "\"F16\"", "\"BF16\"", "\"I32\"", "\"__metadata__\"", "18446744073709551615",
            "9223372036854775807", "-1", "1e999", " ", "\u0000"));
    static final List<byte[]> SEEDS = seeds();
    static final Path DIR = tempDirectory();

    /** A safetensors file: the header's length (8 bytes, little-endian), the header, the data. */
    static byte[] file(long declaredLength, String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(declaredLength).array());
        out.writeBytes(h);
        out.writeBytes(data);
        return out.toByteArray();
    }

    static byte[] file(String header, byte[] data) {
        return file(header.getBytes(StandardCharsets.UTF_8).length, header, data);
    }

    static List<byte[]> seeds() {
        List<byte[]> seeds = new ArrayList<>();
        String i32 = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
        seeds.add(file(i32, new byte[16])); // valid
        seeds.add(file("{\"test\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}", new byte[4])); // a scalar
        seeds.add(file("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,0],\"data_offsets\":[0,0]}}", new byte[0])); // zero-sized
        seeds.add(file("{}\r \t\n", new byte[0])); // header padded with JSON whitespace
        StringBuilder attack = new StringBuilder("{");
        for (int i = 0; i < 10; i++) {
            attack.append(i == 0 ? "" : ",").append("\"weight_").append(i).append("\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}");
        }
        seeds.add(file(attack.append("}").toString(), new byte[16])); // ten tensors over the same 16 bytes
        seeds.add(file(i32, (new String(new byte[16], StandardCharsets.ISO_8859_1) + "extra_bogus_data_for_polyglot_file")
                .getBytes(StandardCharsets.ISO_8859_1))); // bytes after the data
        seeds.add(file(i32, new byte[14])); // data 2 bytes short
        seeds.add(file(0xffffff0000003cL, i32, new byte[16])); // a header length with its high bytes set
        seeds.add(new byte[0]); // nothing at all
        seeds.add(file(60, "", new byte[0])); // a header length and no header
        seeds.add(file(1, "", new byte[] {(byte) 0xff})); // a header that is not UTF-8
        seeds.add(file("{", new byte[0])); // a header that is not JSON
        seeds.add(file("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0, 4]}}", new byte[4])); // shape and range disagree
        seeds.add(file("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,18446744073709551614],\"data_offsets\":[0,16]}}", new byte[16]));
        seeds.add(file("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,9223372036854775807],\"data_offsets\":[0,16]}}", new byte[16]));
        // float tensors the reader reads back, with metadata
        seeds.add(file("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},\"c\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[32,36]}}",
                new byte[36]));
        return seeds;
    }

    private static Path tempDirectory() {
        try {
            return Files.createTempDirectory("safetensors-fuzz");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @Property
    void everyFileOpensAndReadsOrIsRefusedAsBadInput(@ForAll @IntRange(min = 0, max = 1000) int seedIndex, @ForAll long randomSeed,
                                                     @ForAll @IntRange(min = 0, max = 12) int mutations) throws IOException {
        byte[] bytes = MUTATOR.mutate(SEEDS.get(seedIndex % SEEDS.size()), randomSeed, mutations);
        Path file = DIR.resolve("model.safetensors");
        Files.write(file, bytes);
        CONTRACT.check(bytes.length, () -> {
            try (SafetensorsReader reader = SafetensorsReader.open(file)) {
                for (SafetensorsReader.Entry e : reader.entries().values()) {
                    if (List.of("F32", "F16", "BF16").contains(e.dtype()) && e.elementCount() <= 1 << 16) {
                        reader.readFloat32(e.name(), 0, (int) e.elementCount());
                    }
                }
            }
            return null;
        }, () -> "seed " + seedIndex % SEEDS.size() + ", random seed " + randomSeed + ", " + mutations + " mutations: "
                + ParserContract.describe(bytes));
    }

    @AfterContainer
    static void report() {
        System.out.println("fuzzing report: " + CONTRACT.report());
    }
}
