package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.types.DataType;
import io.anneal.toolkit.torchscript.TorchScriptModule;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The TorchScript that calls the GPU library's operators (the fused layer, GraphControl) compiles
 * only where that library registers them, so without a GPU an edit to it, or to an operator's
 * schema, would first fail on a GPU machine. Here each {@code ops.anneal.NAME(...)} call becomes a
 * call of a stub method whose signature is NAME's schema as anneal_ops.cpp registers it (read from
 * the plugin's copy of that source), and libtorch on the CPU compiles the whole class: every call's
 * arguments and results are type-checked against the schemas the library will register.
 */
class FusedLayerSourceTest {
    private static final Pattern CALL = Pattern.compile("ops\\.anneal\\.(\\w+)\\(");
    private static final Pattern LITERAL = Pattern.compile("\"((?:[^\"\\\\]|\\\\.)*)\"");
    private static final Pattern SCHEMA = Pattern.compile("(\\w+)\\((.*)\\)\\s*->\\s*(.+)");

    /** The schemas of TORCH_LIBRARY(anneal, m) in the plugin's copy of anneal_ops.cpp, by operator name. */
    static Map<String, String[]> schemas() throws Exception {
        String source = TorchScriptAttributesTest.resource("/io/anneal/hybrid/kernels/anneal_ops.cpp");
        String block = source.substring(source.indexOf("TORCH_LIBRARY(anneal, m) {"));
        block = block.substring(0, block.indexOf("\n}\n"));
        Map<String, String[]> schemas = new LinkedHashMap<>();
        for (String statement : block.split(";")) {
            if (!statement.contains("m.def(")) {
                continue;
            }
            StringBuilder schema = new StringBuilder();
            Matcher literal = LITERAL.matcher(statement);
            while (literal.find()) {
                schema.append(literal.group(1));
            }
            Matcher m = SCHEMA.matcher(schema.toString().trim());
            assertTrue(m.matches(), "not a schema: " + schema);
            schemas.put(m.group(1), new String[] {m.group(2), m.group(3).trim()});
        }
        return schemas;
    }

    /** A schema type as a TorchScript annotation (an alias annotation such as Tensor(a) is dropped). */
    static String type(String schemaType) {
        String t = schemaType.replaceAll("\\(\\w+!?\\)", "").trim();
        if (t.endsWith("?")) {
            return "Optional[" + type(t.substring(0, t.length() - 1)) + "]";
        }
        if (t.endsWith("[]")) {
            return "List[" + type(t.substring(0, t.length() - 2)) + "]";
        }
        if (t.startsWith("(")) {
            List<String> parts = new ArrayList<>();
            for (String part : t.substring(1, t.length() - 1).split(",")) {
                parts.add(type(part));
            }
            return "Tuple[" + String.join(", ", parts) + "]";
        }
        return switch (t) {
            case "Tensor", "int", "float", "bool", "str" -> t;
            default -> throw new AssertionError("a schema type this test does not map: " + schemaType);
        };
    }

    /** A value of the annotation's type, for a stub's return. */
    static String value(String type) {
        if (type.startsWith("Tuple[")) {
            List<String> values = new ArrayList<>();
            for (String part : type.substring(6, type.length() - 1).split(", ")) {
                values.add(value(part));
            }
            return "(" + String.join(", ", values) + ")";
        }
        if (type.startsWith("List[")) {
            return "[" + value(type.substring(5, type.length() - 1)) + "]";
        }
        return switch (type) {
            case "Tensor" -> "torch.zeros([1])";
            case "int" -> "0";
            case "float" -> "0.0";
            case "bool" -> "False";
            case "str" -> "\"\"";
            default -> throw new AssertionError("no stub value for " + type);
        };
    }

    /** The stub method of one operator in class {@code owner}: its schema's arguments, defaults and result. */
    static String stub(String owner, String name, String[] schema) {
        return signature(owner, name, schema) + "\n    return " + value(type(schema[1])) + "\n\n";
    }

    /**
     * The first line of a method standing for one operator in class {@code owner}, without its line
     * break: {@code def anneal_NAME}, its schema's arguments, defaults and result.
     */
    static String signature(String owner, String name, String[] schema) {
        List<String> parameters = new ArrayList<>(List.of("self: __torch__." + owner));
        if (!schema[0].isBlank()) {
            for (String argument : schema[0].split(",\\s*")) {
                String[] typeAndName = argument.trim().split("\\s+");
                String[] nameAndDefault = typeAndName[1].split("=", 2);
                parameters.add(nameAndDefault[0] + ": " + type(typeAndName[0])
                        + (nameAndDefault.length > 1 ? " = " + nameAndDefault[1] : ""));
            }
        }
        return "  def anneal_" + name + "(" + String.join(", ", parameters) + ") -> " + type(schema[1]) + ":";
    }

    /** {@code source}'s class with every operator call on a stub of the operator's schema. */
    static String onStubs(String source, String owner, Map<String, String[]> schemas) {
        StringBuilder stubs = new StringBuilder("\n");
        for (String name : called(source, schemas)) {
            stubs.append(stub(owner, name, schemas.get(name)));
        }
        return onMethods(source) + stubs;
    }

    /** The operators {@code source} calls, in the order of their first calls, each one anneal_ops.cpp registers. */
    static List<String> called(String source, Map<String, String[]> schemas) {
        Matcher calls = CALL.matcher(source);
        List<String> called = new ArrayList<>();
        while (calls.find()) {
            String name = calls.group(1);
            assertTrue(schemas.containsKey(name), "ops.anneal." + name + " is called, and anneal_ops.cpp registers no " + name);
            if (!called.contains(name)) {
                called.add(name);
            }
        }
        return called;
    }

    /** {@code source} with every {@code ops.anneal.NAME(} call made on the class's method {@code anneal_NAME} instead. */
    static String onMethods(String source) {
        return CALL.matcher(source).replaceAll("self.anneal_$1(");
    }

    private static Map<String, Object> layerAttributes() {
        return TorchScriptLayers.fusedAttributes(TorchScriptAttributesTest.config(),
                TorchScriptAttributesTest.multipliers(), DataType.FLOAT32, FusedLayerOptions.DEFAULT);
    }

    @Test
    void theFusedLayerTypeChecksAgainstTheOperatorsSchemas() throws Exception {
        String layer = onStubs(TorchScriptAttributesTest.resource("FalconH1FusedLayer.torchscript"), "FalconH1Layer", schemas());
        TorchScriptModule.compile("FalconH1Layer", layer, layerAttributes(), Device.cpu());
    }

    @Test
    void graphControlTypeChecksAgainstTheOperatorsSchemas() throws Exception {
        String control = onStubs(TorchScriptAttributesTest.resource("GraphControl.torchscript"), "GraphControl", schemas());
        TorchScriptModule.compile("GraphControl", control, Map.of("training", false), Device.cpu());
    }

    /** A call with an argument missing, or a result used as the wrong type, is refused naming its line. */
    @Test
    void aCallThatDoesNotMatchItsSchemaIsRefused() throws Exception {
        Map<String, String[]> schemas = schemas();
        String source = TorchScriptAttributesTest.resource("FalconH1FusedLayer.torchscript");
        String missing = source.replace("ops.anneal.residual_add(summed[0], self.mlp(summed[1], w, summed[2]))",
                "ops.anneal.residual_add(summed[0])");
        String wrongResult = source.replace("    mamba = mixers[0]\n", "    mamba = mixers\n");
        // inside a branch the attributes never take here (branch_streams 0): TorchScript compiles every path
        String inBranch = source.replace("mamba = self.mamba(ended[1], ended[2], ended[3], w, seq_idx)",
                "mamba = self.mamba(ended, ended[2], ended[3], w, seq_idx)");
        for (String broken : List.of(missing, wrongResult, inBranch)) {
            assertTrue(!broken.equals(source), "the line to break is gone from the source");
            String message = assertThrows(IllegalStateException.class, () -> TorchScriptModule.compile("FalconH1Layer",
                    onStubs(broken, "FalconH1Layer", schemas), layerAttributes(), Device.cpu())).getMessage();
            assertTrue(message.contains("libtorch refused the TorchScript class FalconH1Layer"), message);
        }
    }

    @Test
    void schemaTypesMapToTorchScriptAnnotations() {
        assertEquals("Optional[Tensor]", type("Tensor?"));
        assertEquals("List[int]", type("int[]"));
        assertEquals("Tensor", type("Tensor(a)"));
        assertEquals("Tuple[Tensor, Tensor]", type("(Tensor, Tensor(a))"));
        assertEquals("(torch.zeros([1]), torch.zeros([1]))", value("Tuple[Tensor, Tensor]"));
        assertEquals("  def anneal_linear(self: __torch__.L, x: Tensor, scale: float = 1.0, columns: Optional[Tensor] = None)"
                + " -> Tensor:\n    return torch.zeros([1])\n\n",
                stub("L", "linear", new String[] {"Tensor x, float scale=1.0, Tensor? columns=None", "Tensor"}));
    }
}
