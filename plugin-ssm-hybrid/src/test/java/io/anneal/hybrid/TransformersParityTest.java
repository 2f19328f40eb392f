package io.anneal.hybrid;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.anneal.api.model.ModelOptions;
import io.anneal.hybrid.model.FalconH1Architecture;
import io.anneal.hybrid.model.FalconH1Model;
import io.anneal.hybrid.model.LayerImplementation;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Logits against transformers' {@code FalconH1ForCausalLM} (float32, CPU, torch path), from the
 * fixtures made by {@code tools/fixtures/make_falcon_h1_fixtures.py} (versions in manifest.json).
 * Error measure: max|ours - theirs| / max|theirs| over the whole logits tensor, bound 1e-4.
 */
class TransformersParityTest {

    static Stream<String> fixtureNames() throws IOException, URISyntaxException {
        Path root = fixtures();
        try (Stream<Path> dirs = Files.list(root)) {
            return dirs.filter(Files::isDirectory).map(p -> p.getFileName().toString()).sorted().toList().stream();
        }
    }

    /** Every fixture under both layer implementations. */
    static Stream<Arguments> cases() throws IOException, URISyntaxException {
        return fixtureNames().flatMap(name -> Stream.of(LayerImplementation.values()).map(l -> Arguments.of(name, l)));
    }

    static Path fixtures() throws URISyntaxException {
        return Path.of(TransformersParityTest.class.getResource("/fixtures/falcon-h1").toURI());
    }

    @ParameterizedTest(name = "{0} ({1})")
    @MethodSource("cases")
    void logitsMatchTransformers(String name, LayerImplementation layers) throws Exception {
        Path dir = fixtures().resolve(name);
        long[][] ids = LogitsCommand.readInputIds(dir.resolve("input.json"));
        float[] expected = readFloat32(dir.resolve("logits.f32"));
        try (FalconH1Model model = FalconH1Architecture.loadCheckpoint(dir, ModelOptions.cpu());
                NDManager manager = NDManager.newBaseManager()) {
            model.useLayers(layers);
            NDArray logits = LogitsCommand.logits(model, manager, ids);
            assertArrayEquals(new long[] {ids.length, ids[0].length, model.vocabSize()}, logits.getShape().getShape());
            float[] actual = logits.toFloatArray();
            double error = maxRelativeError(actual, expected);
            System.out.printf("parity %s (%s): max relative error %.3e%n", name, layers.configName(), error);
            assertTrue(error <= 1e-4, name + ": max relative error " + error);
        }
    }

    /** max|a - b| / max|b| over the tensor. */
    static double maxRelativeError(float[] actual, float[] expected) {
        if (actual.length != expected.length) {
            throw new AssertionError("length " + actual.length + " != " + expected.length);
        }
        double diff = 0;
        double ref = 0;
        for (int i = 0; i < expected.length; i++) {
            diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
            ref = Math.max(ref, Math.abs(expected[i]));
        }
        return diff / ref;
    }

    static float[] readFloat32(Path file) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        float[] values = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(values);
        return values;
    }
}
