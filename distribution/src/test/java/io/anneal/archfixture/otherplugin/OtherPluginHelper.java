package io.anneal.archfixture.otherplugin;

/** A class of "another plugin", for {@code PlantedViolationTest}. */
public final class OtherPluginHelper {
    private OtherPluginHelper() {
    }

    public static int help() {
        return 1;
    }
}
