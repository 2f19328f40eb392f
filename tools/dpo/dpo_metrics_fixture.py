#!/usr/bin/env python3
"""Expected DPO metrics of one packed micro-batch, from logits, computed with numpy alone
(independently of the Java code), written as the JSON fixture plugin-dpo's DpoMetricsFixtureTest reads.

    python3 tools/dpo/dpo_metrics_fixture.py   # writes plugin-dpo/src/test/resources/io/anneal/dpo/dpo-metrics-fixture.json

The batch: 2 rows of 16 tokens, packed as PreferenceRows says (pair k of a row = documents 2k chosen
and 2k+1 rejected, padding after); labels -100 where unsupervised. Policy and reference logits
[rows, length, vocab] are random normal. Per TRL's DPOTrainer (trl/trainer/dpo_trainer.py,
concatenated_forward and get_batch_loss_metrics):
  logps          log_softmax(logits)[label] summed over an answer's response tokens (averaged over
                 them for ipo, dpo_norm and simpo, as those losses use them)
  rewards/chosen beta * (policy - reference) chosen logps; rewards/rejected likewise (simpo:
                 beta * policy logps); rewards/accuracies: chosen > rejected; margins: difference
  logps/chosen   the policy's chosen logps as the loss uses them
  logits/chosen  the policy's logits averaged over the vocabulary and the chosen response tokens
                 (TRL: logits[chosen][loss_mask].mean()); here per pair, then the mean over pairs
  loss           the mean over pairs of the pair losses (formulas: preference_loss_fixtures.py)
Every metric is the mean over the batch's pairs.
"""
import json
import os
import numpy as np

VOCAB = 11
ROWS, LENGTH = 2, 16
I = -100


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def batch(rng):
    """Row 0: pairs 0 and 1 then padding; row 1: one pair then padding. Prompts of 2 tokens, answers of 1-3."""
    ids = rng.integers(0, VOCAB, (ROWS, LENGTH))
    labels = np.full((ROWS, LENGTH), I)
    docs = np.zeros((ROWS, LENGTH), dtype=int)
    positions = np.zeros((ROWS, LENGTH), dtype=int)
    layouts = [[(2, 3), (2, 1), (2, 2), (2, 1)], [(2, 2), (2, 3)]]  # (prompt, answer) per document
    for r, documents in enumerate(layouts):
        at = 0
        for d, (prompt, answer) in enumerate(documents):
            n = prompt + answer
            docs[r, at:at + n] = d
            positions[r, at:at + n] = np.arange(n)
            # the label of position t is the token at t+1 of the same document; response tokens supervised
            for t in range(n - 1):
                if t + 1 >= prompt:
                    labels[r, at + t] = ids[r, at + t + 1]
            at += n
        docs[r, at:] = len(documents)
        positions[r, at:] = np.arange(LENGTH - at)
    return ids, labels, positions, docs


def pairs_of(labels, docs):
    """Per pair (row by row): the flat positions of its chosen and rejected response tokens."""
    out = []
    for r in range(ROWS):
        sup = [(t, docs[r, t]) for t in range(LENGTH) if labels[r, t] != I]
        count = max(d for _, d in sup) // 2 + 1
        for k in range(count):
            out.append(([r * LENGTH + t for t, d in sup if d == 2 * k], [r * LENGTH + t for t, d in sup if d == 2 * k + 1]))
    return out


def metrics(case, policy, reference, labels, docs):
    t, beta = case["type"], case["beta"]
    averaged = t in ("dpo_norm", "ipo", "simpo")
    flat_labels = labels.reshape(-1)
    safe = np.where(flat_labels == I, 0, flat_labels)
    lp_policy = np.take_along_axis(log_softmax(policy.reshape(-1, VOCAB)), safe[:, None], 1)[:, 0]
    lp_reference = np.take_along_axis(log_softmax(reference.reshape(-1, VOCAB)), safe[:, None], 1)[:, 0]
    mean_logits = policy.reshape(-1, VOCAB).mean(-1)
    rows = []
    for chosen, rejected in pairs_of(labels, docs):
        nc, nr = len(chosen), len(rejected)
        pc, pr = lp_policy[chosen].sum(), lp_policy[rejected].sum()
        rc, rr = lp_reference[chosen].sum(), lp_reference[rejected].sum()
        if averaged:
            pc, pr, rc, rr = pc / nc, pr / nr, rc / nc, rr / nr
        if t == "simpo":
            z = beta * (pc - pr) - case["gamma"]
            loss = -log_sigmoid(z)
            cr, rj = beta * pc, beta * pr
        else:
            logits = (pc - pr) - (rc - rr)
            loss = (logits - 1 / (2 * beta)) ** 2 if t == "ipo" else -log_sigmoid(beta * logits)
            cr, rj = beta * (pc - rc), beta * (pr - rr)
        rows.append((loss, cr, rj, pc, pr, mean_logits[chosen].mean(), mean_logits[rejected].mean()))
    a = np.array(rows)
    return {"pairs": len(rows), "loss": a[:, 0].mean(), "rewards/chosen": a[:, 1].mean(), "rewards/rejected": a[:, 2].mean(),
            "rewards/accuracies": (a[:, 1] > a[:, 2]).mean(), "rewards/margins": (a[:, 1] - a[:, 2]).mean(),
            "logps/chosen": a[:, 3].mean(), "logps/rejected": a[:, 4].mean(),
            "logits/chosen": a[:, 5].mean(), "logits/rejected": a[:, 6].mean()}


def main():
    rng = np.random.default_rng(2026)
    ids, labels, positions, docs = batch(rng)
    policy = rng.normal(0.0, 1.5, (ROWS, LENGTH, VOCAB)).astype(np.float32)
    reference = (policy + rng.normal(0.0, 0.7, (ROWS, LENGTH, VOCAB))).astype(np.float32)
    cases = []
    for case in ({"type": "dpo", "beta": 0.1}, {"type": "dpo_norm", "beta": 5.0}, {"type": "ipo", "beta": 0.5},
                 {"type": "simpo", "beta": 2.0, "gamma": 0.5}):
        expected = metrics(case, policy.astype(np.float64), reference.astype(np.float64), labels, docs)
        cases.append(dict(case, expected={k: float(v) for k, v in expected.items()}))
    fixture = {"vocab": VOCAB, "rows": ROWS, "length": LENGTH, "input_ids": ids.reshape(-1).tolist(),
               "labels": labels.reshape(-1).tolist(), "position_ids": positions.reshape(-1).tolist(),
               "document_ids": docs.reshape(-1).tolist(), "policy_logits": [float(v) for v in policy.reshape(-1)],
               "reference_logits": [float(v) for v in reference.reshape(-1)], "cases": cases}
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "..", "plugin-dpo", "src", "test", "resources", "io", "anneal", "dpo", "dpo-metrics-fixture.json")
    with open(out, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(out), "with", len(cases), "cases")


if __name__ == "__main__":
    main()
