package io.anneal.hybrid;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Sizes whose weight matrices overflow one array are refused when the config is read, naming the key. */
class ConfigSizesTest {
    @Test
    void aHiddenSizeOfABillionIsRefusedBeforeAnythingIsAllocated() {
        InputException e = assertThrows(InputException.class, () -> TinyModels.config(Map.of("hidden_size", 1e9)));
        assertTrue(e.getMessage().contains("hidden_size too large: model.embed_tokens.weight would hold 97 x 1000000000 elements, "
                + "more than one array holds (2147483647)"), e.getMessage());
    }

    @Test
    void theLargerSizeOfTheMatrixIsTheOneNamed() {
        InputException e = assertThrows(InputException.class, () -> TinyModels.config(Map.of("intermediate_size", 100_000_000)));
        assertTrue(e.getMessage().contains("intermediate_size too large: feed_forward.up_proj.weight would hold 100000000 x 32"),
                e.getMessage());
        assertEquals(32, TinyModels.config(Map.of()).hiddenSize());
    }
}
