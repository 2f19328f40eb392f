package io.anneal.distribution.arch;

import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.EvaluationResult;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Each rule catches a planted violation (test fixtures under {@code io.anneal.archfixture}), with
 * a message that names the offending classes and the reason.
 */
class PlantedViolationTest {
    private static JavaClasses planted;

    @BeforeAll
    static void importFixtures() {
        planted = new ClassFileImporter().importPackages("io.anneal.archfixture", "io.anneal.runtime.cli");
    }

    private static String violations(ArchRule rule) {
        EvaluationResult result = rule.evaluate(planted);
        assertThat(result.hasViolation()).as("rule must catch the planted violation: " + rule.getDescription()).isTrue();
        return result.getFailureReport().toString();
    }

    @Test
    void pluginDependingOnTheRuntimeIsCaught() {
        String report = violations(ArchitectureRules.pluginIsolation("io.anneal.archfixture.plugin.."));
        assertThat(report).contains("BadPlugin").contains("io.anneal.runtime.cli.Main").contains("only through io.anneal.api");
    }

    @Test
    void pluginDependingOnAnotherPluginIsCaught() {
        String report = violations(ArchitectureRules.pluginIsolation("io.anneal.archfixture.plugin.."));
        assertThat(report).contains("PluginUsingAnotherPlugin").contains("io.anneal.archfixture.otherplugin.OtherPluginHelper");
    }

    @Test
    void pluginUsingTheContractAndTheToolkitPasses() {
        // the other side of the rule: a plugin that uses io.anneal.api and io.anneal.toolkit only is no violation
        EvaluationResult alone = ArchitectureRules.pluginIsolation("io.anneal.archfixture.goodplugin..").evaluate(planted);
        assertThat(alone.hasViolation()).as(alone.getFailureReport().toString()).isFalse();
    }

    @Test
    void apiDependingOnTheToolkitIsCaught() {
        String report = violations(ArchitectureRules.apiDependsOnNothingOfOurs("io.anneal.archfixture.api.."));
        assertThat(report).contains("ApiUsingTheToolkit").contains("io.anneal.toolkit.cli.CommandArguments");
    }

    @Test
    void toolkitDependingOnTheRuntimeIsCaught() {
        String report = violations(ArchitectureRules.toolkitDependsOnTheContractOnly("io.anneal.archfixture.toolkit.."));
        assertThat(report).contains("ToolkitReachingIntoTheRuntime").contains("io.anneal.runtime.cli.Main")
                .doesNotContain("StableToolkitType");
    }

    @Test
    void stableToolkitTypeIsCaught() {
        String report = violations(ArchitectureRules.everyPublicToolkitTypeIsExperimental("io.anneal.archfixture.toolkit.."));
        assertThat(report).contains("StableToolkitType").contains("Stable").doesNotContain("ToolkitReachingIntoTheRuntime");
    }

    @Test
    void runtimeNamingAPluginIsCaught() {
        // Seen from the other side: "plugin" classes that the fixture API type names.
        String report = violations(ArchitectureRules.runtimeNamesNoPlugin("io.anneal.archfixture.api..", List.of("io.anneal.runtime..")));
        assertThat(report).contains("UnmarkedApiType");
    }

    @Test
    void apiDependingOnTheRuntimeIsCaught() {
        String report = violations(ArchitectureRules.apiDependsOnNothingOfOurs("io.anneal.archfixture.api.."));
        assertThat(report).contains("UnmarkedApiType").contains("io.anneal.runtime.cli.Main");
    }

    @Test
    void packageCycleIsCaught() {
        String report = violations(ArchitectureRules.noPackageCycles("io.anneal.archfixture.cycle.(*).."));
        assertThat(report).contains("Cycle detected").contains("cycle.a").contains("cycle.b");
    }

    @Test
    void apiTypeWithoutStatusIsCaught() {
        String report = violations(ArchitectureRules.everyPublicApiTypeHasAStatus("io.anneal.archfixture.api.."));
        assertThat(report).contains("UnmarkedApiType").contains("Stable");
    }

    @Test
    void numberOperandIsCaught() {
        String report = violations(ArchitectureRules.noNumberOperandsThatBackwardReads("io.anneal.archfixture.number.."));
        assertThat(report).contains("NumberOperand").contains("mul").contains("DeviceScalars")
                .doesNotContain("NDArray.add(");
    }
}
