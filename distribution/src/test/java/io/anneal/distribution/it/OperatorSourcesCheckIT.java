package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Enumeration;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tools/gpu/check_operator_sources.py}, which tools/gpu/pack.sh and benchmarks.sh run before a
 * GPU call: the assembled distribution's ssm-hybrid jar must carry the working tree's operator
 * sources, or the plugin refuses the operators built from the tree on the GPU machine (a whole table
 * call was lost to a distribution packed between two edits). Checked on the real assembled jar, and on
 * a copy of it with one source changed as an older build would hold it.
 */
class OperatorSourcesCheckIT {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();
    private static final String KERNELS = "io/anneal/hybrid/kernels/";

    @Test
    void theAssembledDistributionCarriesTheTreesSources() throws Exception {
        Distribution dist = Distribution.assembled();
        Run run = check(dist.home);
        assertEquals(0, run.exit, run.output);
    }

    @Test
    void aDistributionBuiltFromOtherSourcesIsRefusedNamingTheFileAndTheFix(@TempDir Path dir) throws Exception {
        Path jar = pluginJar(Distribution.assembled().home);
        Path stale = dir.resolve("plugins/ssm-hybrid").resolve(jar.getFileName());
        Files.createDirectories(stale.getParent());
        rewrite(jar, stale, KERNELS + "anneal_ops.cpp");
        Run run = check(dir);
        assertEquals(2, run.exit, run.output);
        assertTrue(run.output.contains(stale + ": anneal_ops.cpp differs"), run.output);
        assertTrue(run.output.contains("mvn -B -q -o -DskipTests install, then tools/gpu/pack.sh"), run.output);
        assertTrue(!run.output.contains("anneal_kernels.cu differs"), run.output);
    }

    /**
     * benchmarks.sh's loss part needs plugin datamix (the bundled data), which pack.sh --table leaves
     * out: it stops before any GPU work, saying so, where two calls' loss runs each failed at start.
     */
    @Test
    void theLossPartOnAKitWithoutDatamixStopsAtOnceNamingTheFix(@TempDir Path dir) throws Exception {
        Files.createDirectories(dir.resolve(".gpu/app/plugins/ssm-hybrid"));
        ProcessBuilder pb = new ProcessBuilder("bash", ROOT.resolve("tools/gpu/benchmarks.sh").toString(), "loss")
                .directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().put("OUT", dir.resolve("out").toString());
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(2, p.waitFor(), out);
        assertTrue(out.contains("the loss part needs plugin datamix") && out.contains("pack with tools/gpu/pack.sh"), out);
        assertTrue(!out.contains("=="), "no part started: " + out);
    }

    private record Run(int exit, String output) {}

    private static Run check(Path dist) throws Exception {
        Process p;
        try {
            p = new ProcessBuilder("python3", ROOT.resolve("tools/gpu/check_operator_sources.py").toString(), dist.toString())
                    .redirectErrorStream(true).start();
        } catch (IOException e) {
            Assumptions.abort("no python3 here: tools/gpu/check_operator_sources.py not run (" + e.getMessage() + ")");
            return null;
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Run(p.waitFor(), out);
    }

    private static Path pluginJar(Path home) throws IOException {
        try (DirectoryStream<Path> jars = Files.newDirectoryStream(home.resolve("plugins/ssm-hybrid"), "plugin-ssm-hybrid-*.jar")) {
            return jars.iterator().next();
        }
    }

    /** A copy of {@code jar} at {@code to} whose entry {@code changed} has one line more, as a build from before an edit holds it. */
    private static void rewrite(Path jar, Path to, String changed) throws IOException {
        boolean found = false;
        try (ZipFile in = new ZipFile(jar.toFile()); OutputStream file = Files.newOutputStream(to);
             ZipOutputStream out = new ZipOutputStream(file)) {
            for (Enumeration<? extends ZipEntry> entries = in.entries(); entries.hasMoreElements(); ) {
                ZipEntry entry = entries.nextElement();
                out.putNextEntry(new ZipEntry(entry.getName()));
                try (InputStream data = in.getInputStream(entry)) {
                    data.transferTo(out);
                }
                if (entry.getName().equals(changed)) {
                    out.write("// an edit made after this jar was built\n".getBytes(StandardCharsets.UTF_8));
                    found = true;
                }
                out.closeEntry();
            }
        }
        assertTrue(found, jar + " holds no " + changed);
    }
}
