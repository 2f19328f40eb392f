package io.anneal.archfixture.goodplugin;

import io.anneal.api.units.TokenCount;
import io.anneal.toolkit.cli.CommandArguments;
import java.util.List;

/** What a plugin may do, for {@code PlantedViolationTest}: use the contract and the toolkit. */
public final class ToolkitUsingPlugin {
    private ToolkitUsingPlugin() {
    }

    public static TokenCount budget(List<String> args) {
        return TokenCount.of(CommandArguments.parse("fixture", "usage: fixture --tokens N", args, "tokens").tokens("tokens", 1L));
    }
}
