package io.anneal.archfixture.number;

import ai.djl.ndarray.NDArray;

/** Planted: a Java number as the operand of mul (caught) and of add (allowed: AddBackward keeps no operand). */
public final class NumberOperand {
    private NumberOperand() {
    }

    public static NDArray scaled(NDArray x) {
        return x.mul(2f).add(1f);
    }
}
