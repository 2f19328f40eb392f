package io.anneal.datamix;

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
 * Fuzzing of the data parsers (issue 15) under {@link ParserContract}: a JSONL record (chat and
 * preference forms, {@link RecordParser}) ends as a record or a {@code BadRecordException}, which the
 * source reports as "file:line: expected ..." (exit 2, or skipped and counted under on-error = skip);
 * a Parquet file ({@link ParquetChatRows#scan}, footer, schema, pages and their encodings and
 * compression) ends with its rows or an InputException naming the file. Never another throwable, 5 s
 * at most per input, and at most 64 MiB plus 256 bytes (JSONL) or 4 KiB (Parquet: a page may decompress to 1,032 times its size, DEFLATE's limit) per input byte allocated. Seeds: the bundled
 * data's records and hostile lines; the Parquet fixtures of ParquetSourceTest (every codec and page
 * version the reader supports). Tries: jqwik.tries.default (300 here; the fuzz-long profile 10^6).
 */
class DataParsersFuzzTest {
    static final ParserContract JSONL = new ParserContract("JSONL record (RecordParser)", 5_000, 64L << 20, 256,
            RecordParser.BadRecordException.class);
    static final ParserContract PARQUET = new ParserContract("Parquet file (ParquetChatRows.scan)", 5_000, 64L << 20, 4096);
    static final InputMutator JSON_MUTATOR = new InputMutator(64 * 1024, List.of("{", "}", "[", "]", ":", ",", "\"", "\\",
            "\\u0000", "\\ud800", "\"messages\"", "\"role\"", "\"content\"", "\"user\"", "\"assistant\"", "\"system\"",
            "\"prompt\"", "\"chosen\"", "\"rejected\"", "null", "true", "1e999", "-0", "<|im_end|>", "<|im_start|>system\n"));
    static final InputMutator BINARY_MUTATOR = new InputMutator(1 << 20, List.of("PAR1", "\u0000\u0000\u0000\u0000"));
    static final List<byte[]> JSON_SEEDS = jsonSeeds();
    static final List<byte[]> PARQUET_SEEDS = parquetSeeds();
    static final Path DIR = tempDirectory();

    static List<byte[]> jsonSeeds() {
        List<byte[]> seeds = new ArrayList<>();
        try (var files = Files.list(Path.of("../examples/data"))) {
            for (Path f : files.filter(f -> f.toString().endsWith(".jsonl")).sorted().toList()) {
                Files.readAllLines(f).stream().limit(5).forEach(l -> seeds.add(l.getBytes(StandardCharsets.UTF_8)));
            }
        } catch (IOException e) {
            throw new IllegalStateException("the bundled data is the seed corpus", e);
        }
        for (String hostile : List.of("{\"messages\":" + "[".repeat(5_000), "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}",
                "{\"messages\":[{\"role\":\"user\",\"content\":1e999999999}]}", "{\"messages\":[],\"messages\":[]}", "\u0000", "")) {
            seeds.add(hostile.getBytes(StandardCharsets.UTF_8));
        }
        return seeds;
    }

    static List<byte[]> parquetSeeds() {
        List<byte[]> seeds = new ArrayList<>();
        for (String name : List.of("chat-snappy.parquet", "chat-zstd.parquet", "chat-none.parquet", "chat-gzip-v2-delta.parquet",
                "chat-plain-required.parquet", "bad-rows.parquet", "bad-role-type.parquet", "not-parquet.parquet")) {
            try {
                seeds.add(Files.readAllBytes(ParquetSourceTest.fixture(name)));
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
        return seeds;
    }

    private static Path tempDirectory() {
        try {
            return Files.createTempDirectory("data-fuzz");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @Property
    void everyJsonlRecordParsesOrIsABadRecord(@ForAll @IntRange(min = 0, max = 1000) int seedIndex, @ForAll long randomSeed,
                                              @ForAll @IntRange(min = 0, max = 16) int mutations) {
        byte[] line = JSON_MUTATOR.mutate(JSON_SEEDS.get(seedIndex % JSON_SEEDS.size()), randomSeed, mutations);
        java.util.function.Supplier<String> input = () -> "seed " + seedIndex % JSON_SEEDS.size() + ", random seed " + randomSeed + ", " + mutations + " mutations: "
                + ParserContract.describe(line);
        RecordParser parser = new RecordParser();
        JSONL.check(line.length, () -> parser.parseChat(line, 0, line.length), input);
        JSONL.check(line.length, () -> parser.parsePreference(line, 0, line.length), input);
    }

    @Property
    void everyParquetFileScansOrIsRefusedNamingIt(@ForAll @IntRange(min = 0, max = 1000) int seedIndex, @ForAll long randomSeed,
                                                  @ForAll @IntRange(min = 0, max = 8) int mutations) throws IOException {
        byte[] bytes = BINARY_MUTATOR.mutate(PARQUET_SEEDS.get(seedIndex % PARQUET_SEEDS.size()), randomSeed, mutations);
        Path file = DIR.resolve("fuzz.parquet");
        Files.write(file, bytes);
        PARQUET.check(bytes.length, () -> {
            ParquetChatRows.scan(file, (position, length, location, record, problem) -> { });
            return null;
        }, () -> "seed " + seedIndex % PARQUET_SEEDS.size() + ", random seed " + randomSeed + ", " + mutations + " mutations ("
                + bytes.length + " bytes)");
    }

    /** The long run's find (166,729 executions in): a mutated file whose data page claims 0 entries. */
    @Example
    void aDataPageOfNoEntriesScansOrIsRefused() throws IOException {
        everyParquetFileScansOrIsRefusedNamingIt(5, -1661L, 1);
        everyParquetFileScansOrIsRefusedNamingIt(5, -1661L, 6);
    }

    /**
     * The second long run's find (353,486 executions in): 46 bytes deleted from a page header of
     * chat-gzip-v2-delta.parquet, so that the bytes after its statistics' min_value field (aa aa aa aa 40)
     * read as a length of 88,773,930; Thrift allocated that before reading (88.9 MB for 4,428 bytes, over
     * the cap of 85.2 MB).
     */
    @Example
    void aPageHeaderClaimingAHugeFieldIsRefused() throws IOException {
        everyParquetFileScansOrIsRefusedNamingIt(3, 179283L, 1);
    }

    @AfterContainer
    static void report() {
        System.out.println("fuzzing report: " + JSONL.report());
        System.out.println("fuzzing report: " + PARQUET.report());
    }
}
