package io.anneal.distribution.arch;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The rules of DESIGN.md over the production classes of every module. */
class ArchitectureTest {
    private static JavaClasses production;

    @BeforeAll
    static void importClasses() {
        production = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.anneal");
    }

    @Test
    void importedEnoughToMeanSomething() {
        // JUnit 5's lesson: a rule over an empty import passes vacuously.
        for (String pkg : List.of("io.anneal.api", "io.anneal.toolkit", "io.anneal.runtime", "io.anneal.schedules", "io.anneal.mup",
                "io.anneal.hybrid", "io.anneal.dpo", "io.anneal.datamix", "io.anneal.onnx")) {
            long n = production.stream().filter(c -> c.getPackageName().startsWith(pkg)).count();
            assertTrue(n >= 1, "no classes imported from " + pkg + ": the test class path lacks that module");
        }
        assertTrue(production.size() >= 30, "only " + production.size() + " classes imported: the class path is wrong");
    }

    @Test
    void pluginsDependOnTheContractAndTheToolkitOnly() {
        for (String plugin : ArchitectureRules.PLUGINS) {
            ArchitectureRules.pluginIsolation(plugin).check(production);
        }
    }

    @Test
    void apiDependsOnNothingOfOurs() {
        ArchitectureRules.apiDependsOnNothingOfOurs(ArchitectureRules.API).check(production);
    }

    @Test
    void toolkitDependsOnTheContractOnly() {
        ArchitectureRules.toolkitDependsOnTheContractOnly(ArchitectureRules.TOOLKIT).check(production);
    }

    @Test
    void everyPublicToolkitTypeIsExperimental() {
        ArchitectureRules.everyPublicToolkitTypeIsExperimental(ArchitectureRules.TOOLKIT).check(production);
    }

    @Test
    void runtimeNamesNoPluginClass() {
        ArchitectureRules.runtimeNamesNoPlugin(ArchitectureRules.RUNTIME, ArchitectureRules.PLUGINS).check(production);
    }

    @Test
    void noPackageCycles() {
        ArchitectureRules.noPackageCycles("io.anneal.(**)").check(production);
    }

    @Test
    void everyPublicApiTypeDeclaresItsStability() {
        ArchitectureRules.everyPublicApiTypeHasAStatus(ArchitectureRules.API).check(production);
    }

    @Test
    void noNumberOperandsThatBackwardReads() {
        ArchitectureRules.noNumberOperandsThatBackwardReads("io.anneal..").check(production);
    }
}
