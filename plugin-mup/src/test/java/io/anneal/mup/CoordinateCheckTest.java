package io.anneal.mup;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.toolkit.mup.FalconH1Multipliers;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The coordinate check on a Falcon-like residual model: after a few Adam steps the logits' scale
 * grows with width in the standard parametrisation (Adam moves every lm_head entry by about the
 * LR, and the logit sums width of them: growth ~ width, Tensor Programs V section 7) and stays
 * flat under the muP rules.
 */
class CoordinateCheckTest {
    private static final int[] WIDTHS = {32, 64, 128, 256};
    private static final FalconH1Multipliers ONES = new FalconH1Multipliers(1, 1, 1, 1, 1, 1, 1,
            new double[] {1, 1, 1, 1, 1}, new double[] {1, 1}, 1);

    @Test
    void logitsDriftWithWidthWithoutMupAndStayFlatWithIt() {
        CoordinateCheck check = new CoordinateCheck(5, 2, 16, 0.01, 0);
        List<CoordinateCheck.WidthResult> standard = check.run(WIDTHS, w -> new ResidualTestModel(w, 2, ONES));
        List<CoordinateCheck.WidthResult> mup = check.run(WIDTHS,
                w -> new ResidualTestModel(w, 2, WidthScaling.scale(ONES, WIDTHS[0], w, true)));
        assertEquals(List.of("embedding", "layer.0", "layer.1", "logits"), mup.get(0).sites());
        int logits = 3;
        double spDrift = CoordinateCheck.drift(standard, logits);
        double mupDrift = CoordinateCheck.drift(mup, logits);
        System.out.printf("coord-check logits drift over widths 32..256: SP %.2f, muP %.2f%n", spDrift, mupDrift);
        for (int s = 0; s < 4; s++) {
            System.out.printf("  %s: SP %.3f muP %.3f%n", mup.get(0).sites().get(s), CoordinateCheck.drift(standard, s),
                    CoordinateCheck.drift(mup, s));
        }
        assertTrue(spDrift > 3, "standard parametrisation should drift, got " + spDrift);
        assertTrue(mupDrift < 1.5, "muP should be flat, got " + mupDrift);
        // Step 0 is before any update: at the base width both parametrisations are the same model.
        assertEquals(standard.get(0).scales()[0][logits], mup.get(0).scales()[0][logits], 1e-9);
    }
}
