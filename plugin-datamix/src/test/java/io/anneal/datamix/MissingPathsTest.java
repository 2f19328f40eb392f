package io.anneal.datamix;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A data block reports every missing path at once: each source's and the tokenizer's. */
class MissingPathsTest {
    @Test
    void everyMissingSourceAndTheTokenizerAreReportedTogether(@TempDir Path dir) {
        ConfigException e = assertThrows(ConfigException.class, () -> new MixTrainingData.Factory().create(MixConfig.mix(Map.of(
                "tokenizer", "none/tokenizer.json",
                "sources", List.of(Map.of("name", "a", "path", "a.jsonl"), Map.of("name", "b", "path", "b.jsonl")))),
                new TestContext(dir)));
        assertEquals(List.of("data.sources[0].path", "data.sources[1].path", "data.tokenizer"),
                e.problems().stream().map(ConfigProblem::path).toList(), e.getMessage());
    }
}
