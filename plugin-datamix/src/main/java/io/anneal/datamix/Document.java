package io.anneal.datamix;

/**
 * One rendered example: token ids and, per token, whether the loss supervises predicting it.
 *
 * @param ids            token ids
 * @param supervised     supervised[j]: token j is a training target (predicted from tokens before it)
 * @param assistantTurns assistant turns in the example
 * @param eosMasked      assistant turns whose closing {@code <|im_end|>} is not supervised
 * @param problem        null, or why the template could not render the record (expected ..., found ...)
 */
record Document(int[] ids, boolean[] supervised, int assistantTurns, int eosMasked, String problem) {

    Document(int[] ids, boolean[] supervised, int assistantTurns, int eosMasked) {
        this(ids, supervised, assistantTurns, eosMasked, null);
    }

    /** A record the template could not render: {@code problem} says what was expected and found. */
    static Document failed(String problem) {
        return new Document(new int[0], new boolean[0], 0, 0, problem);
    }

    int length() {
        return ids.length;
    }

    /** Targets the loss can use: supervised tokens that have a token before them. */
    int supervisedTargets() {
        int c = 0;
        for (int j = 1; j < supervised.length; j++) {
            if (supervised[j]) {
                c++;
            }
        }
        return c;
    }
}
