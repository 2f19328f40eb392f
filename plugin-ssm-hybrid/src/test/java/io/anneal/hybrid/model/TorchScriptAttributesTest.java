package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.DataType;
import io.anneal.api.model.MupMultipliers;
import io.anneal.hybrid.TinyModels;
import io.anneal.toolkit.mup.FalconH1Multipliers;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The attributes TorchScriptLayers writes against the ones each TorchScript class declares: same
 * names, same order (the archive's pickle is read by position), same types. The fused layer compiles
 * only on a GPU, so without this a mismatch (a new attribute such as ssd_recompute declared but not
 * written) would first show there.
 */
class TorchScriptAttributesTest {
    private static final Pattern DECLARATION = Pattern.compile("^  (\\w+) : (\\w+)\\s*$", Pattern.MULTILINE);

    /** A small fused-layer configuration with one group (also FusedLayerSourceTest's). */
    static FalconH1Config config() {
        return TinyModels.config(Map.of("mamba_n_groups", 1));
    }

    static MupMultipliers multipliers() {
        return FalconH1Multipliers.fromConfigJson(Map.of(), "defaults");
    }

    /** A resource beside TorchScriptLayers (or an absolute one), as text. */
    static String resource(String name) throws Exception {
        try (InputStream in = TorchScriptLayers.class.getResourceAsStream(name)) {
            assertTrue(in != null, name + " is not on the class path");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    /** The class's declarations before its first method, name to TorchScript type, in order. */
    static Map<String, String> declared(String resource) throws Exception {
        String source = resource(resource);
        String body = source.substring(source.indexOf("class FalconH1Layer"));
        body = body.substring(0, body.indexOf("\n  def "));
        Map<String, String> names = new LinkedHashMap<>();
        Matcher m = DECLARATION.matcher(body);
        while (m.find()) {
            names.put(m.group(1), m.group(2));
        }
        return names;
    }

    private static String typeOf(Object value) {
        if (value instanceof Boolean) {
            return "bool";
        }
        if (value instanceof Integer || value instanceof Long) {
            return "int";
        }
        return value instanceof Double || value instanceof Float ? "float" : value.getClass().getSimpleName();
    }

    private static void assertMatches(Map<String, String> declared, Map<String, Object> written) {
        assertEquals(new ArrayList<>(declared.keySet()), new ArrayList<>(written.keySet()), "names, in order");
        List<String> types = new ArrayList<>();
        written.values().forEach(v -> types.add(typeOf(v)));
        assertEquals(new ArrayList<>(declared.values()), types, "types, in order");
    }

    @Test
    void theReferenceLayersAttributesAreItsDeclarations() throws Exception {
        Map<String, String> declared = declared("FalconH1Layer.torchscript");
        assertTrue(declared.size() > 20, declared.toString());
        assertMatches(declared, TorchScriptLayers.attributes(config(), multipliers(), DataType.FLOAT16));
    }

    @Test
    void theFusedLayersAttributesAreItsDeclarationsWithTheScansAndTheCastsSettings() throws Exception {
        Map<String, String> declared = declared("FalconH1FusedLayer.torchscript");
        assertEquals("bool", declared.get("ssd_recompute"));
        assertEquals("bool", declared.get("keep_casts"));
        FusedLayerOptions.BranchStream none = FusedLayerOptions.BranchStream.NONE;
        for (FusedLayerOptions options : List.of(new FusedLayerOptions(true, none, false),
                new FusedLayerOptions(false, none, false), new FusedLayerOptions(true, none, true))) {
            Map<String, Object> written = TorchScriptLayers.fusedAttributes(config(), multipliers(), DataType.FLOAT32, options);
            assertMatches(declared, written);
            assertEquals(options.ssdRecompute(), written.get("ssd_recompute"));
            assertEquals(options.keepWeightCasts(), written.get("keep_casts"));
        }
    }

    /**
     * tools/gpu/profile_layers.py compiles the fused layer itself, on the GPU machine, with the attributes
     * its attributes() lists: one the layer declares and the script lacks stops every profile there
     * (a GPU call spent on nothing), so the list is held to the declarations here, names in order.
     */
    @Test
    void theGpuProfilerSetsEveryAttributeTheFusedLayerDeclares() throws Exception {
        String script = Files.readString(Path.of("..", "tools", "gpu", "profile_layers.py"));
        String body = script.substring(script.indexOf("def attributes("));
        body = body.substring(0, body.indexOf("\n\n\n"));
        List<String> listed = new ArrayList<>();
        Matcher m = Pattern.compile("\\(\"(\\w+)\", ").matcher(body);
        while (m.find()) {
            listed.add(m.group(1));
        }
        assertEquals(new ArrayList<>(declared("FalconH1FusedLayer.torchscript").keySet()), listed,
                "tools/gpu/profile_layers.py attributes(), in the order of FalconH1FusedLayer.torchscript's declarations");
    }

    /** model.branch-stream as the layer's mixers() reads branch_streams: 0 one stream, 1 attention beside, 2 Mamba beside. */
    @Test
    void theBranchStreamSettingIsTheValueTheLayerBranchesOn() throws Exception {
        Map<String, String> declared = declared("FalconH1FusedLayer.torchscript");
        assertEquals("int", declared.get("branch_streams"));
        String source = resource("FalconH1FusedLayer.torchscript");
        Map<FusedLayerOptions.BranchStream, String> firstOnTheBranch = Map.of(
                FusedLayerOptions.BranchStream.ATTENTION, "attention = self.attention(qkv[0]",
                FusedLayerOptions.BranchStream.MAMBA, "mamba = self.mamba(pieces[0]");
        for (FusedLayerOptions.BranchStream branch : FusedLayerOptions.BranchStream.values()) {
            Map<String, Object> written = TorchScriptLayers.fusedAttributes(config(), multipliers(), DataType.FLOAT32,
                    new FusedLayerOptions(true, branch, false));
            assertMatches(declared, written);
            int value = (Integer) written.get("branch_streams");
            if (branch == FusedLayerOptions.BranchStream.NONE) {
                assertEquals(0, value);
                continue;
            }
            // the branch taken for this value begins with that mixer on the second stream
            String taken = source.substring(source.indexOf("if self.branch_streams == " + value + ":"));
            taken = taken.substring(0, taken.indexOf("return ops.anneal.branch_join"));
            int first = taken.indexOf(firstOnTheBranch.get(branch));
            assertTrue(taken.contains("ops.anneal.branch_begin") && first >= 0 && first < taken.indexOf("ops.anneal.branch_end"),
                    branch + " -> " + value + ":\n" + taken);
        }
    }

    @Test
    void twoAttributesSwappedAreCaught() throws Exception {
        Map<String, String> declared = declared("FalconH1FusedLayer.torchscript");
        Map<String, Object> written = TorchScriptLayers.fusedAttributes(config(), multipliers(), DataType.FLOAT32,
                FusedLayerOptions.DEFAULT);
        Map<String, Object> swapped = new LinkedHashMap<>();
        List<String> keys = new ArrayList<>(written.keySet());
        int i = keys.indexOf("ssd_chunk");
        keys.set(i, "ssd_recompute");
        keys.set(i + 1, "ssd_chunk");
        keys.forEach(k -> swapped.put(k, written.get(k)));
        assertFalse(new ArrayList<>(declared.keySet()).equals(new ArrayList<>(swapped.keySet())));
        try {
            assertMatches(declared, swapped);
        } catch (AssertionError expected) {
            return;
        }
        throw new AssertionError("a swapped pair of attributes passed");
    }
}
