package io.anneal.distribution.arch;

import static com.tngtech.archunit.base.DescribedPredicate.not;
import static com.tngtech.archunit.core.domain.JavaClass.Predicates.resideInAPackage;
import static com.tngtech.archunit.core.domain.JavaClass.Predicates.resideInAnyPackage;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

import com.tngtech.archunit.base.DescribedPredicate;
import ai.djl.ndarray.NDArray;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaMethodCall;
import com.tngtech.archunit.core.domain.JavaModifier;
import com.tngtech.archunit.lang.ArchRule;
import io.anneal.api.Experimental;
import io.anneal.api.Stable;
import java.util.List;
import java.util.Set;

/**
 * The module rules of DESIGN.md ("Rules, each enforced by a test, not by goodwill") as ArchUnit
 * rules. They take package names as parameters so a test can show that each catches a planted
 * violation.
 */
final class ArchitectureRules {
    static final String API = "io.anneal.api..";
    static final String TOOLKIT = "io.anneal.toolkit..";
    static final String RUNTIME = "io.anneal.runtime..";
    /** The bundled plugins' root packages (DESIGN.md, "Modules"). */
    static final List<String> PLUGINS = List.of(
            "io.anneal.schedules..", "io.anneal.mup..", "io.anneal.hybrid..", "io.anneal.dpo..", "io.anneal.datamix..",
            "io.anneal.onnx..");

    private ArchitectureRules() {
    }

    /**
     * A plugin depends on the contract (io.anneal.api), the toolkit (io.anneal.toolkit) and third-party
     * libraries only: of Anneal's code, nothing else, so never the runtime, the testkit or another plugin.
     */
    static ArchRule pluginIsolation(String plugin) {
        DescribedPredicate<JavaClass> otherAnnealCode = resideInAPackage("io.anneal..")
                .and(not(resideInAnyPackage(API, TOOLKIT, plugin)))
                .as("are Anneal classes outside " + API + ", " + TOOLKIT + " and " + plugin);
        return noClasses().that().resideInAPackage(plugin)
                .should().dependOnClassesThat(otherAnnealCode)
                .because("a plugin talks to the runtime and to other plugins only through io.anneal.api, and may use "
                        + "the helpers of io.anneal.toolkit (DESIGN.md, Modules); any other dependency on Anneal's code "
                        + "breaks plugin layers and upgrades")
                .allowEmptyShould(false);
    }

    /** platform-api depends on the JDK and DJL's api only. */
    static ArchRule apiDependsOnNothingOfOurs(String api) {
        return classes().that().resideInAPackage(api)
                .should().onlyDependOnClassesThat().resideInAnyPackage(api, "java..", "ai.djl..")
                .because("platform-api is the stable SPI that plugins compile against; it may depend on DJL's api "
                        + "and nothing of Anneal's, the toolkit included (DESIGN.md, Modules)");
    }

    /** platform-toolkit depends on the contract, the JDK and DJL's api only: never the runtime, never a plugin. */
    static ArchRule toolkitDependsOnTheContractOnly(String toolkit) {
        return classes().that().resideInAPackage(toolkit)
                .should().onlyDependOnClassesThat().resideInAnyPackage(toolkit, API, "java..", "ai.djl..")
                .because("the toolkit is shipped to every plugin layer beside the contract; it may depend on "
                        + "io.anneal.api and DJL's api only (DESIGN.md, Modules)")
                .allowEmptyShould(false);
    }

    /**
     * Every public toolkit type is {@link Experimental} and none {@link Stable}: the toolkit is less
     * stable than the contract (it may change in any minor API version), and says so in code.
     */
    static ArchRule everyPublicToolkitTypeIsExperimental(String toolkit) {
        return classes().that().resideInAPackage(toolkit).and(topLevelPublic())
                .should().beAnnotatedWith(Experimental.class).andShould().notBeAnnotatedWith(Stable.class)
                .because("the toolkit holds helpers, not the contract: plugin authors must see in code that a "
                        + "toolkit type may change in a minor version (Trino's plugin toolkit carries no promise either)")
                .allowEmptyShould(false);
    }

    /** The runtime names no plugin class: it finds plugins through ServiceLoader and the API. */
    static ArchRule runtimeNamesNoPlugin(String runtime, List<String> plugins) {
        return noClasses().that().resideInAPackage(runtime)
                .should().dependOnClassesThat().resideInAnyPackage(plugins.toArray(String[]::new))
                .because("the runtime reaches plugins only through io.anneal.api and ServiceLoader (DESIGN.md, Modules)");
    }

    /** No cycles between packages. */
    static ArchRule noPackageCycles(String rootPattern) {
        return slices().matching(rootPattern).should().beFreeOfCycles()
                .because("package cycles make modules impossible to split or reason about (DESIGN.md, Rules)");
    }

    /** Every public API type declares its stability, so the stable signature check knows what it guards. */
    static ArchRule everyPublicApiTypeHasAStatus(String api) {
        return classes().that().resideInAPackage(api).and(topLevelPublic())
                .should().beAnnotatedWith(Stable.class).orShould().beAnnotatedWith(Experimental.class)
                .because("plugin authors must see in code what they can rely on (JUnit 5's @API status; "
                        + "Trino dropped an unchecked @Experimental)");
    }

    private static DescribedPredicate<JavaClass> topLevelPublic() {
        return new DescribedPredicate<>("are public top-level types") {
            @Override
            public boolean test(JavaClass c) {
                return c.getModifiers().contains(JavaModifier.PUBLIC) && c.isTopLevelClass();
            }
        };
    }

    /** The NDArray operations whose backward keeps the other operand (PyTorch's derivatives.yaml). */
    private static final Set<String> OPERAND_KEEPING = Set.of(
            "mul", "muli", "div", "divi", "rdiv", "rdivi", "pow", "powi", "maximum", "minimum");

    /** No Java number as the operand of an NDArray operation whose gradient reads it. */
    static ArchRule noNumberOperandsThatBackwardReads(String root) {
        DescribedPredicate<JavaMethodCall> numberOperand = new DescribedPredicate<>(
                "NDArray." + new java.util.TreeSet<>(OPERAND_KEEPING) + " with a Java Number") {
            @Override
            public boolean test(JavaMethodCall call) {
                List<JavaClass> parameters = call.getTarget().getRawParameterTypes();
                return call.getTargetOwner().isAssignableTo(NDArray.class)
                        && OPERAND_KEEPING.contains(call.getName())
                        && parameters.size() == 1 && parameters.get(0).isEquivalentTo(Number.class);
            }
        };
        return noClasses().that().resideInAPackage(root).should().callMethodWhere(numberOperand)
                .because("DJL wraps the number in a CPU tensor over a Java buffer that is freed while autograd still "
                        + "holds it for backward: random gradients on CPU after a garbage collection; use "
                        + "io.anneal.toolkit.autograd.DeviceScalars");
    }
}
