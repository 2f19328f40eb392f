package io.anneal.runtime.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import io.anneal.api.InputException;
import io.anneal.api.config.ConfigException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading pipeline files: overrides that reach into lists, and input too deep for the parser. */
class PipelineLoaderTest {
    @TempDir
    Path tmp;

    private Path pipeline() throws Exception {
        return Files.writeString(tmp.resolve("p.conf"), "pipeline.name = t\nstages = [ { type = sft, keep-last = 2,\n"
                + "  data { sources = [ { path = a.jsonl }, { path = b.jsonl } ] } } ]\n");
    }

    private Config load(String... overrides) throws Exception {
        return new PipelineLoader(null).load(pipeline(), List.of(overrides)).config();
    }

    @Test
    void setReachesListItemsInsideAStageWithBracketsOrDots() throws Exception {
        Config c = load("stages[0].data.sources[1].path=c.jsonl", "stages.0.data.sources.0.path=d.jsonl",
                "stages[0].data.sources[1].weight=0.5");
        List<? extends Config> sources = c.getConfigList("stages").get(0).getConfigList("data.sources");
        assertEquals("d.jsonl", sources.get(0).getString("path"));
        assertEquals("c.jsonl", sources.get(1).getString("path"));
        assertEquals(0.5, sources.get(1).getDouble("weight"));
        assertEquals(2, c.getConfigList("stages").get(0).getInt("keep-last"), "the rest of the stage stays");
        assertEquals("--set stages[0].data.sources[1].path=c.jsonl",
                Origins.of(sources.get(1).getValue("path").origin()).description());
        assertEquals(7, load("pipeline.seed=7", "new.block.key=1").getInt("pipeline.seed"));
    }

    @Test
    void anIndexOutOfRangeIsOneMessageNamingTheKey() {
        for (String index : List.of("1", "99999999999999")) {
            InputException e = assertThrows(InputException.class, () -> load("stages[" + index + "].keep-last=1"));
            assertEquals("--set stages[" + index + "].keep-last=1: stages has no element at index " + index
                    + " (it has 1, indices 0 to 0)", e.getMessage());
        }
        assertEquals("--set stages.0.data.sources.2.path=x: stages[0].data.sources has no element at index 2 (it has 2, indices 0 to 1)",
                assertThrows(InputException.class, () -> load("stages.0.data.sources.2.path=x")).getMessage());
        assertEquals("--set pipeline[0].name=x: pipeline is not a list, found {\"name\":\"t\"} (a block)",
                assertThrows(InputException.class, () -> load("pipeline[0].name=x")).getMessage());
        assertEquals("--set pipeline.name.x=1: pipeline.name is not a block, found \"t\" (a string)",
                assertThrows(InputException.class, () -> load("pipeline.name.x=1")).getMessage());
        assertTrue(assertThrows(InputException.class, () -> load("stages[x].keep-last=1")).getMessage()
                .startsWith("--set stages[x].keep-last=1: expected a path such as pipeline.seed"));
    }

    @Test
    void nestingTooDeepForTheParserIsBadInputNamingTheFile() throws Exception {
        List<String> deep = List.of("a = " + "{ b = ".repeat(20_000) + "1" + " }".repeat(20_000),
                "a = " + "[".repeat(20_000) + "]".repeat(20_000));
        for (String text : deep) {
            Path file = Files.writeString(tmp.resolve("deep.conf"), text);
            InputException e = assertThrows(InputException.class, () -> new PipelineLoader(null).load(file, List.of()));
            assertTrue(e.getMessage().startsWith(file + ":") && e.getMessage().contains(
                    "expected blocks, lists and += nested at most a few hundred deep"), e.getMessage());
            assertTrue(e.getMessage().endsWith("found nesting too deep to read"), e.getMessage());
        }
    }

    @Test
    void moreThan64AppendsAreBadInputNamingTheLine() throws Exception {
        // lightbend/config#729: resolve() recurses per += (1,000 overflowed the stack; 200 allocated 71 MB)
        Path file = Files.writeString(tmp.resolve("appends.conf"), "a = []\n" + "a += 1\n".repeat(1_000));
        assertEquals(file + ":66: expected at most 64 += in a file (each nests one more concatenation to resolve), found more; "
                + "write the list out instead",
                assertThrows(InputException.class, () -> new PipelineLoader(null).load(file, List.of())).getMessage());
        Path fine = Files.writeString(tmp.resolve("few.conf"), "a = []\n" + "a += 1\n".repeat(64));
        assertEquals(64, new PipelineLoader(null).load(fine, List.of()).config().getList("a").size());
    }

    @Test
    void anOverrideReachesIntoAListBuiltBySubstitution() throws Exception {
        // examples/gpu-small-dpo.conf: an included file's stages, then one more (HOCON list concatenation)
        Files.writeString(tmp.resolve("base.conf"), "stages = [ { type = sft, lr = 1 } ]\n");
        Path file = Files.writeString(tmp.resolve("chain.conf"),
                "include \"base.conf\"\nstages = ${stages} [ { type = dpo, lr = 2 } ]\n");
        Config config = new PipelineLoader(null).load(file, List.of("stages[1].lr=3", "stages[0].lr=5")).config();
        assertEquals(List.of("sft", "dpo"), config.getConfigList("stages").stream().map(c -> c.getString("type")).toList());
        assertEquals(List.of(5, 3), config.getConfigList("stages").stream().map(c -> c.getInt("lr")).toList());
        assertEquals("--set stages[2].lr=1: stages has no element at index 2 (it has 2, indices 0 to 1)",
                assertThrows(InputException.class, () -> new PipelineLoader(null).load(file, List.of("stages[2].lr=1")))
                        .getMessage());
    }

    @Test
    void moreThan256SubstitutionsAreBadInputNamingTheLine() throws Exception {
        // found by the long fuzz run: 1,700 lines of "a = ${b}" (15 KB) allocated 301 MB before resolve() refused them
        Path file = Files.writeString(tmp.resolve("subst.conf"), "b = 1\n" + "a = ${b}\n".repeat(1_700));
        assertEquals(file + ":258: expected at most 256 ${...} substitutions in a file (resolving them costs memory quadratic "
                + "in their number), found more",
                assertThrows(InputException.class, () -> new PipelineLoader(null).load(file, List.of())).getMessage());
        Path fine = Files.writeString(tmp.resolve("few-subst.conf"), "b = 1\n" + "a = ${b}\n".repeat(256)
                + "# ${c} in a comment and \"${d}\" in a string are not substitutions\n");
        assertEquals(1, new PipelineLoader(null).load(fine, List.of()).config().getInt("a"));
    }

    @Test
    void aKeyPathTooLongForTheParserIsBadInputNamingTheLine() throws Exception {
        // a path expression of 10,000 keys (lightbend/config#778) is refused before the parser's quadratic work
        Path file = Files.writeString(tmp.resolve("path.conf"), "x = 1\na" + ".a".repeat(10_000) + " = 1");
        assertEquals(file + ":2: expected a key path of at most 256 keys (a.b.c has 3), found a longer one",
                assertThrows(InputException.class, () -> new PipelineLoader(null).load(file, List.of())).getMessage());
        // parentheses are key text like any other (found by the long fuzz run: a.).a.).a.)... of 7,200 keys, 18 KB,
        // allocated 201 MB, then overflowed the stack, while the check restarted its count at each parenthesis)
        Path parens = Files.writeString(tmp.resolve("parens.conf"), "x = 1\ny = 2\n" + "a.).(".repeat(200) + " = 1\n");
        assertEquals(parens + ":3: expected a key path of at most 256 keys (a.b.c has 3), found a longer one",
                assertThrows(InputException.class, () -> new PipelineLoader(null).load(parens, List.of())).getMessage());
        Path fewParens = Files.writeString(tmp.resolve("few-parens.conf"), "a" + ".(b)".repeat(255) + " = 1\n");
        assertEquals(1, new PipelineLoader(null).load(fewParens, List.of()).config().getInt("a" + ".(b)".repeat(255)));
        // quoted dots and comments are not keys
        Path quoted = Files.writeString(tmp.resolve("quoted.conf"), "x = \"" + ".a".repeat(1_000) + "\"\n# " + "a.".repeat(1000) + "\ny = 2");
        assertEquals(2, new PipelineLoader(null).load(quoted, List.of()).config().getInt("y"));
        // an include of a path with a NUL character: typesafe-config's InvalidPathException escaped as exit 1
        Path nul = Files.writeString(tmp.resolve("nul.conf"), "x = 1\ninclude \"missin\\u0000g.conf\"\n");
        assertTrue(assertThrows(InputException.class, () -> new PipelineLoader(null).load(nul, List.of())).getMessage()
                .startsWith(nul + ": an include names a path that cannot exist ("));
        // a value of 4,000 words: typesafe-config joins them quadratically (326 MB for 20 KB before this check)
        Path words = Files.writeString(tmp.resolve("words.conf"), "a = 1\nb = 2\nname = " + "rsqr ".repeat(4_000) + "\n");
        assertEquals(words + ":3: expected a value of at most 256 words on one line (HOCON joins them, and the quoted strings, "
                + "lists and blocks between them, into one value), found more; quote the text or use a list",
                assertThrows(InputException.class, () -> new PipelineLoader(null).load(words, List.of())).getMessage());
        // 200 words still join, and a list of 1,000 items is no concatenation
        Path fine = Files.writeString(tmp.resolve("fine.conf"), "name = " + "w ".repeat(200) + "\nlist = [" + "1, ".repeat(1000) + "1]");
        assertEquals(1001, new PipelineLoader(null).load(fine, List.of()).config().getList("list").size());
    }

    @Test
    void touchingQuotedStringsListsAndBlocksCountAsWordsOfOneValue() throws Exception {
        // found by the long fuzz run: "data/units.jsonl"l"l"l"... (11,800 pieces, no blank between them, 50 KB on one
        // line) allocated 395 MB; [1][1]... and {a=1}{a=1}... are joined the same way (10,000 lists: 412 MB)
        String message = ": expected a value of at most 256 words on one line (HOCON joins them, and the quoted strings, "
                + "lists and blocks between them, into one value), found more; quote the text or use a list";
        for (String value : List.of("\"data/units.jsonl\"" + "l\"l\"".repeat(2_000), "\"a\"".repeat(257), "[1]".repeat(257),
                "{a = 1}".repeat(257), "[1] ".repeat(200) + "\"a\"b".repeat(30))) {
            Path file = Files.writeString(tmp.resolve("pieces.conf"), "a = 1\n# \"\"\"\"\"\"\"\"\"\"\n\nx = " + value + "\n");
            assertEquals(file + ":4" + message, assertThrows(InputException.class,
                    () -> new PipelineLoader(null).load(file, List.of())).getMessage(), value.substring(0, 20));
        }
        // 256 pieces are still one value
        Path fine = Files.writeString(tmp.resolve("fine.conf"), "s = " + "\"a\"".repeat(256) + "\nl = " + "[1]".repeat(256)
                + "\nx = \"b\"\ny = " + "${x}".repeat(200) + "\n");
        Config config = new PipelineLoader(null).load(fine, List.of()).config();
        assertEquals("a".repeat(256), config.getString("s"));
        assertEquals(256, config.getList("l").size());
        assertEquals("b".repeat(200), config.getString("y"), "${x} is one piece, not two");
        // what a block or list holds counts for its own values, not for the value around it
        Path nested = Files.writeString(tmp.resolve("nested.conf"), "list = [" + "{ a = [1] [2], s = \"x\"y }, ".repeat(300) + "]\n"
                + "b = { c = " + "\"z\"".repeat(200) + " } " + "{ d = 1 }".repeat(200) + "\n");
        config = new PipelineLoader(null).load(nested, List.of()).config();
        assertEquals(300, config.getList("list").size());
        assertEquals(List.of(1, 2), config.getConfigList("list").get(299).getIntList("a"));
        assertEquals("xy", config.getConfigList("list").get(299).getString("s"));
        assertEquals("z".repeat(200), config.getString("b.c"));
    }

    @Test
    void aUnicodeEscapeWithoutFourHexDigitsIsBadInputNamingTheLine() throws Exception {
        // found by the long fuzz run: typesafe-config parses "\\u-922" as the code point -2338 and its tokenizer threw an
        // IllegalArgumentException (exit 1) instead of a ConfigException
        for (String escape : List.of("\\u-922", "\\u+922", "\\uZZZZ", "\\u12")) {
            Path file = Files.writeString(tmp.resolve("escape.conf"), "a = 1\nb = \"x" + escape + "\"\n");
            assertEquals(file + ":2: expected 4 hex digits after \\u in a quoted string, found '" + escape.replace("12", "12??")
                    + "'", assertThrows(InputException.class, () -> new PipelineLoader(null).load(file, List.of())).getMessage());
        }
        // 4 hex digits, an escaped backslash before a u, and a triple-quoted string (no escapes there) read as before
        Path fine = Files.writeString(tmp.resolve("fine.conf"), "a = \"\\u00e9\\uD83D\\uDE00\"\nb = \"\\\\u-922\"\n"
                + "c = \"\"\"\\u-922\"\"\"\n");
        Config config = new PipelineLoader(null).load(fine, List.of()).config();
        assertEquals("\u00e9\ud83d\ude00", config.getString("a"));
        assertEquals("\\u-922", config.getString("b"));
        assertEquals("\\u-922", config.getString("c"));
    }

    @Test
    void integerKeysRefuseFractionsAndValuesOutOfRange() {
        HoconConfigView v = new HoconConfigView(com.typesafe.config.ConfigFactory.parseString(
                "keep-last = 2.5\nseed = 1e999\nbig = 3000000000\nok = 1e9\nquoted = \"12\"", 
                com.typesafe.config.ConfigParseOptions.defaults().setOriginDescription("t.conf")), "stages[0]");
        assertEquals("t.conf: stages[0].keep-last: expected a whole number that fits in 32 bits, found 2.5 (a number)",
                assertThrows(ConfigException.class, () -> v.getInt("keep-last")).getMessage());
        assertThrows(ConfigException.class, () -> v.getLong("keep-last"));
        assertThrows(ConfigException.class, () -> v.getLong("seed"));
        assertThrows(ConfigException.class, () -> v.getInt("big"));
        assertEquals(3_000_000_000L, v.getLong("big"));
        assertEquals(1_000_000_000, v.getInt("ok"));
        assertEquals(12, v.getInt("quoted"));
    }
}
