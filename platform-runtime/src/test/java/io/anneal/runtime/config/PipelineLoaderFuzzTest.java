package io.anneal.runtime.config;

import static org.junit.jupiter.api.Assertions.assertFalse;

import io.anneal.testkit.InputMutator;
import io.anneal.testkit.ParserContract;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * Fuzzing of the HOCON loading path (issue 15): the bytes of a pipeline file go through the real
 * {@link PipelineLoader} (parse, includes, resolution), and the contract of {@link ParserContract}
 * holds: success or InputException (exit 2), never another throwable, 5 s at most, 64 MiB plus 1 KiB
 * per input byte at most. Inputs are the seed corpus below, mutated (bit flips, HOCON tokens, deleted
 * and repeated spans, truncation). Tries: jqwik.tries.default (junit-platform.properties: 300 in the
 * normal build; the fuzz-long profile: 1,000,000; docs/fuzzing.md records the executions of a run).
 */
class PipelineLoaderFuzzTest {
    static final ParserContract CONTRACT = new ParserContract("HOCON pipeline (PipelineLoader)", 5_000, 64L << 20, 1024);
    static final Path DIR = tempDirectory();
    static final InputMutator MUTATOR = new InputMutator(64 * 1024, List.of("{", "}", "[", "]", "=", ":", "+=", ",", "\n",
            "${a}", "${?a}", "${a.b}", "a.b.c", "\"", "\"\"\"", "include \"other.conf\"", "include file(\"missing.conf\")",
            "include required(\"missing.conf\")", "#", "//", "1e999", "-9223372036854775809", "50M", "1.5G", "null", "true",
            "stages", "model", "type", "= ${stages}", "\\u0000", "\u0000", "\ud800"));
    static final List<byte[]> SEEDS = seeds();

    static List<byte[]> seeds() {
        List<byte[]> seeds = new ArrayList<>();
        try (var files = Files.list(Path.of("../examples"))) {
            for (Path f : files.filter(f -> f.toString().endsWith(".conf")).sorted().toList()) {
                seeds.add(Files.readAllBytes(f));
            }
        } catch (IOException e) {
            throw new IllegalStateException("the examples are the seed corpus", e);
        }
        // lightbend/config#777: 20,000 nested objects "{1:{1:{1:..." (parseString) overflow the parser's stack
        seeds.add(("{1:".repeat(20_000)).getBytes(StandardCharsets.US_ASCII));
        // lightbend/config#779: the same with nested lists "[[[[..." (a StackOverflowError, not a ConfigException)
        seeds.add("[".repeat(20_000).getBytes(StandardCharsets.US_ASCII));
        // lightbend/config#778 (filed with the two above): a path expression "a.a.a.a..." 10,000 keys long
        seeds.add(("a" + ".a".repeat(10_000) + " = 1").getBytes(StandardCharsets.US_ASCII));
        // the long run's find: a key set 1,700 times to a substitution (301 MB before MAX_SUBSTITUTIONS)
        seeds.add("a = ${b}\n".repeat(1_700).getBytes(StandardCharsets.US_ASCII));
        // lightbend/config#729: 1,000 "a += i" lines; resolve() recurses per concatenation and overflows
        StringBuilder appends = new StringBuilder();
        for (int i = 1; i <= 1000; i++) {
            appends.append("a += ").append(i).append('\n');
        }
        seeds.add(appends.toString().getBytes(StandardCharsets.US_ASCII));
        // resolution: a cycle, a self-reference with concatenation, an optional that is missing, a missing include
        seeds.add("a = ${b}\nb = ${a}\n".getBytes(StandardCharsets.US_ASCII));
        seeds.add("a = [1]\na = ${a} [2]\nb = ${a} ${a}\n".getBytes(StandardCharsets.US_ASCII));
        seeds.add("x = ${?missing}\ninclude \"missing.conf\"\n".getBytes(StandardCharsets.US_ASCII));
        seeds.add("pipeline { seed = 1e999, run-dir = \"\"\"\n".getBytes(StandardCharsets.US_ASCII));
        return seeds;
    }

    private static Path tempDirectory() {
        try {
            return Files.createTempDirectory("hocon-fuzz");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @Property
    void everyPipelineFileLoadsOrIsRefusedAsBadInput(@ForAll @IntRange(min = 0, max = 1000) int seedIndex, @ForAll long randomSeed,
                                                     @ForAll @IntRange(min = 0, max = 24) int mutations) throws IOException {
        check(seedIndex, randomSeed, mutations);
    }

    /** One input under the contract; true when it loaded, false when it was refused as bad input. */
    private static boolean check(int seedIndex, long randomSeed, int mutations) throws IOException {
        byte[] input = MUTATOR.mutate(SEEDS.get(seedIndex % SEEDS.size()), randomSeed, mutations);
        Path file = DIR.resolve("pipeline.conf");
        Files.write(file, input);
        return CONTRACT.check(input.length, () -> new PipelineLoader(null).load(file, List.of()), () -> "seed " + seedIndex % SEEDS.size()
                + ", random seed " + randomSeed + ", " + mutations + " mutations: " + ParserContract.describe(input));
    }

    /**
     * The second long run's find (344,396 executions in): examples/tiny-dpo.conf with its line 67 grown to
     * path = "data/units.jsonl"l"l"l"... (11,800 touching pieces, 53,865 bytes in all), which allocated 395 MB
     * (cap 122 MB) before quoted strings counted as words of their own.
     */
    @Example
    void aValueOfTouchingQuotedStringsIsRefused() throws IOException {
        assertFalse(check(8, 6381465632522L, 4), "the find is refused as bad input (if it loads, examples/tiny-dpo.conf "
                + "changed and this no longer replays the find)");
    }

    /**
     * The third long run's find (302,374 executions in, on the fix above): the 10,000-key path seed mutated
     * to a.).\x95a.).\x95... (18,080 bytes, 7,200 keys), which allocated 201 MB (cap 86 MB) and overflowed
     * the stack while the shape check restarted its key count at each parenthesis.
     */
    @Example
    void aKeyPathWithParenthesesIsRefused() throws IOException {
        assertFalse(check(13, 3468167L, 18), "the find is refused as bad input");
    }

    /**
     * The fourth long run's find (619,556 executions in, on the fixes above): examples/tiny-sft.conf mutated to hold
     * a quoted "\\u-922", whose code point -2338 made typesafe-config's tokenizer throw an IllegalArgumentException.
     */
    @Example
    void aUnicodeEscapeWithASignIsRefused() throws IOException {
        assertFalse(check(10, -7457L, 15), "the find is refused as bad input");
    }

    @AfterContainer
    static void report() {
        System.out.println("fuzzing report: " + CONTRACT.report());
    }
}
