package io.anneal.archfixture.plugin;

import io.anneal.archfixture.otherplugin.OtherPluginHelper;

/** A planted violation for {@code PlantedViolationTest}: a "plugin" that calls another plugin's class. */
public final class PluginUsingAnotherPlugin {
    private PluginUsingAnotherPlugin() {
    }

    public static int borrow() {
        return OtherPluginHelper.help();
    }
}
