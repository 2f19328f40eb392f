package io.anneal.schedules.cli;

import io.anneal.api.cli.CliCommand;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.units.TokenCount;
import io.anneal.schedules.lr.AdamBatchScaling;
import io.anneal.toolkit.cli.CommandArguments;
import java.util.List;
import java.util.Locale;

/** {@code anneal lr-scale --batch 256K,1M,4M}: the Adam batch-scaling table (seed 000). */
public final class LrScaleCommand implements CliCommand {
    static final String USAGE = String.join("\n",
            "usage: anneal lr-scale --batch 256K,1M,4M [--reference-lr 128e-6] [--reference-batch 1M]",
            "Adam batch scaling (Falcon-H1 SFT): peak(b) = reference-lr * sqrt(b / reference-batch).");

    @Override
    public String name() {
        return "lr-scale";
    }

    @Override
    public String summary() {
        return "peak LR per batch size by Adam batch scaling (eta / sqrt(b) constant)";
    }

    @Override
    public int run(List<String> args, CommandContext context) {
        CommandArguments a = CommandArguments.parse("anneal lr-scale", USAGE, args, "batch", "reference-lr", "reference-batch");
        if (a.help()) {
            context.out().println(USAGE);
            return 0;
        }
        a.noPositionals();
        double referenceLr = a.positiveNumber("reference-lr", AdamBatchScaling.FALCON_H1_REFERENCE_PEAK);
        long referenceBatch = a.tokens("reference-batch", AdamBatchScaling.FALCON_H1_REFERENCE_BATCH);
        List<Long> batches = a.tokenList("batch");
        context.out().println("batch  peak-lr");
        for (long b : batches) {
            if (b <= 0) {
                throw a.error("--batch: expected positive token counts, found " + TokenCount.format(b));
            }
            context.out().printf(Locale.ROOT, "%s  %.6g%n", TokenCount.format(b), AdamBatchScaling.scaledPeak(referenceLr, b, referenceBatch));
        }
        return 0;
    }
}
