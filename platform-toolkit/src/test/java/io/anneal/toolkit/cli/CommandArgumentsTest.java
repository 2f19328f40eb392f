package io.anneal.toolkit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The API's argument parser every command uses: values, switches, positionals, and its error messages. */
class CommandArgumentsTest {
    private static final String USAGE = "usage: anneal demo FILE --out X [--rows N] [--dry-run]";

    private static CommandArguments parse(String... args) {
        return CommandArguments.parse("anneal demo", USAGE, List.of(args), Set.of("out", "rows", "precision", "batch"),
                Set.of("dry-run"));
    }

    @Test
    void valuesSwitchesAndPositionals() {
        CommandArguments a = parse("run.conf", "--out", "r.json", "--rows=4", "--dry-run", "--batch", "4M,1.5G");
        assertEquals("run.conf", a.onePositional("the pipeline file"));
        assertEquals("r.json", a.required("out"));
        assertEquals(4, a.positiveInt("rows", 1));
        assertTrue(a.isSet("dry-run"));
        assertFalse(a.help());
        assertEquals(List.of(4_000_000L, 1_500_000_000L), a.tokenList("batch"));
        assertEquals("float16", a.choice("precision", "float16", "float16", "float32"));
        assertEquals(7, parse().positiveInt("rows", 7), "the default when absent");
        assertTrue(parse("-h").help());
    }

    @Test
    void mistakesNameTheCommandTheOptionAndEndWithTheUsage() {
        assertMessage(() -> parse("--outt", "x"), "anneal demo: unknown option --outt (known: --batch, --dry-run, --out, --precision, --rows)");
        assertMessage(() -> parse("--out"), "anneal demo: --out needs a value");
        assertMessage(() -> parse("--dry-run=yes"), "anneal demo: --dry-run takes no value");
        assertMessage(() -> parse("--rows", "0").positiveInt("rows", 1), "anneal demo: --rows: expected a positive integer, found '0'");
        assertMessage(() -> parse("--rows", "two").positiveInt("rows", 1), "found 'two'");
        assertMessage(() -> parse().required("out"), "anneal demo: --out is missing");
        assertMessage(() -> parse("a", "b").onePositional("the pipeline file"),
                "expected the pipeline file, found 2 positional arguments [a, b]");
        assertMessage(() -> parse().onePositional("the pipeline file"), "expected the pipeline file, found none");
        assertMessage(() -> parse("--precision", "bf16").choice("precision", "float16", "float16", "float32"),
                "--precision: expected one of float16, float32, found 'bf16'");
        assertMessage(() -> parse("--batch", "4M,-1").tokenList("batch"), "--batch");
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable call, String expected) {
        InputException e = assertThrows(InputException.class, call);
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertTrue(e.getMessage().endsWith(USAGE), "the usage line ends every message: " + e.getMessage());
    }
}
