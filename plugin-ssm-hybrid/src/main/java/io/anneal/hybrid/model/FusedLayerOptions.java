package io.anneal.hybrid.model;

import io.anneal.api.config.ConfigView;
import java.util.ArrayList;
import java.util.List;

/**
 * How the fused layers run, where the choice changes speed and memory but not the arithmetic (so a
 * run may change them across a resume, and they do nothing on the reference path).
 *
 * @param ssdRecompute model.ssd-recompute: true recomputes the SSD scan's forward pass in the backward
 *     (the least memory); false keeps its intermediates
 * @param branchStream model.branch-stream: which mixer, if any, runs on a second CUDA stream beside the
 *     other (Falcon-H1's attention and Mamba-2 read the same input and meet again at the next norm)
 * @param keepWeightCasts model.keep-weight-casts: true keeps each linear layer's half-precision cast
 *     of its weight from the forward to the backward; false casts again in the backward (the least memory)
 */
public record FusedLayerOptions(boolean ssdRecompute, BranchStream branchStream, boolean keepWeightCasts) {
    /** The defaults of reference.conf: the least memory, one stream. */
    public static final FusedLayerOptions DEFAULT = new FusedLayerOptions(true, BranchStream.NONE, false);

    public FusedLayerOptions {
        if (branchStream == null) {
            throw new IllegalArgumentException("branchStream must not be null (BranchStream.NONE: one stream)");
        }
    }

    /** The model block's settings. */
    public static FusedLayerOptions fromHocon(ConfigView model) {
        return new FusedLayerOptions(model.getBoolean("ssd-recompute"), model.getEnum("branch-stream", BranchStream.class),
                model.getBoolean("keep-weight-casts"));
    }

    /** A setting other than its default: as the config file writes it, and what it does on the fused path. */
    private record Changed(String assignment, String effect) {}

    /** The settings other than the defaults, in the order of the model block's documentation. */
    private List<Changed> changed() {
        List<Changed> changed = new ArrayList<>();
        if (!ssdRecompute) {
            changed.add(new Changed("model.ssd-recompute = false", "the SSD scan keeps its intermediates for the backward"));
        }
        if (branchStream != BranchStream.NONE) {
            boolean attention = branchStream == BranchStream.ATTENTION;
            changed.add(new Changed("model.branch-stream = " + branchStream.configName(),
                    (attention ? "attention" : "Mamba") + " runs on a second stream beside " + (attention ? "Mamba" : "attention")));
        }
        if (keepWeightCasts) {
            changed.add(new Changed("model.keep-weight-casts = true",
                    "the linear layers keep their weights' half-precision casts for the backward"));
        }
        return changed;
    }

    /** What the fused path's status line adds for settings other than the defaults ("" for none). */
    String describe() {
        StringBuilder line = new StringBuilder();
        for (Changed setting : changed()) {
            line.append("; ").append(setting.effect()).append(" (").append(setting.assignment()).append(")");
        }
        return line.toString();
    }

    /**
     * What the reference path's status line adds when these settings are not the defaults ("" for
     * none): they change nothing there, and a user who set one should not have to guess why.
     */
    String ignoredOnReference() {
        List<String> set = changed().stream().map(Changed::assignment).toList();
        if (set.isEmpty()) {
            return "";
        }
        String named = set.size() == 1 ? set.get(0)
                : String.join(", ", set.subList(0, set.size() - 1)) + " and " + set.get(set.size() - 1);
        return "; " + named + (set.size() == 1 ? " changes" : " change") + " nothing here (fused path only)";
    }

    /**
     * Which of a layer's two mixers runs on a second stream, beside the other on the step's own
     * ({@code FalconH1FusedLayer.torchscript}'s {@code branch_streams}; {@code anneal_ops.cpp}, branch_*).
     * The second stream has the higher priority: its kernels' blocks are scheduled first when both wait.
     */
    public enum BranchStream {
        /** One stream: the mixers one after the other. */
        NONE(0),
        /** Attention on the second stream. */
        ATTENTION(1),
        /** Mamba-2 on the second stream. */
        MAMBA(2);

        private final int torchScriptValue;

        BranchStream(int torchScriptValue) {
            this.torchScriptValue = torchScriptValue;
        }

        public String configName() {
            return ConfigView.configName(this);
        }

        /** The TorchScript layer's {@code branch_streams} attribute. */
        int torchScriptValue() {
            return torchScriptValue;
        }
    }
}
