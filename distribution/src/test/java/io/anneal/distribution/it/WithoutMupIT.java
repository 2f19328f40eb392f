package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.distribution.it.Distribution.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 13 item 4, Falcon-H1 without a hidden dependency: a copy of the assembled distribution with
 * plugins/mup deleted. The hybrid plugin reads the muP multipliers of the model block and of every
 * checkpoint's config.json itself, so the SFT-then-DPO chain (which loads the SFT result as the DPO
 * stage's start and reference) runs; a pipeline that asks for plugin mup's width scaling is refused
 * by {@code anneal validate} naming the plugin.
 */
class WithoutMupIT {
    @TempDir
    static Path tmp;
    static Distribution dist;
    static Path home;

    @BeforeAll
    static void installCopyWithoutMup() throws IOException {
        dist = Distribution.copyOfAssembled(tmp);
        home = dist.home;
        Path mup = home.resolve("plugins/mup");
        assertTrue(Files.isDirectory(mup), "the distribution ships plugins/mup");
        Distribution.deleteTree(mup);
    }

    static Result anneal(String... args) throws Exception {
        return dist.run(args);
    }

    @Test
    void aFalconH1ChainRunsWithoutPluginMup() throws Exception {
        Result plugins = anneal("plugins");
        assertEquals(0, plugins.exit(), plugins.out());
        assertTrue(plugins.out().lines().noneMatch(l -> l.startsWith("mup ")), plugins.out());
        assertTrue(plugins.out().lines().anyMatch(l -> l.startsWith("ssm-hybrid ")), plugins.out());
        // the tiny chain, shortened: SFT publishes final/, DPO loads it as its start and its reference
        Result run = anneal("run", "--quiet", "examples/tiny-dpo.conf", "stages[0].token-budget=8192",
                "stages[1].token-budget=4096", "stages[1].eval-every=0", "stages[1].objective.reference=on-the-fly");
        assertEquals(0, run.exit(), run.out());
        assertTrue(run.out().contains("reference model: a frozen copy of the policy's initial weights"), run.out());
        assertTrue(Files.isRegularFile(home.resolve("runs/tiny-dpo/2-dpo/final/model.safetensors")), run.out());
        String config = Files.readString(home.resolve("runs/tiny-dpo/2-dpo/final/config.json"));
        assertTrue(config.contains("\"lm_head_multiplier\" : 1.0"), config);
    }

    @Test
    void validateNamesPluginMupForAPipelineThatNeedsWidthScaling() throws Exception {
        Result r = anneal("validate", "examples/falcon-h1-coord-check.conf");
        assertEquals(2, r.exit(), r.out());
        assertTrue(r.out().contains("model.mup.type: expected a mup-multipliers type (known: none are loaded), found unknown "
                + "type 'falcon-h1'; plugin 'mup' provides it and is not loaded (the distribution keeps it in plugins/mup"), r.out());
        assertTrue(!r.out().contains("\tat "), r.out());
    }
}
