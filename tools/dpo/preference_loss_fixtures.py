#!/usr/bin/env python3
"""Expected values of Anneal's preference losses, computed from the published formulas with numpy
alone (independently of the Java code), written as the JSON fixture that plugin-dpo's tests read.

    python3 tools/dpo/preference_loss_fixtures.py  # writes plugin-dpo/src/test/resources/io/anneal/dpo/preference-loss-fixtures.json

Each case holds pairs in the form of `anneal dpo loss --input` (per-token log-probs of the response
tokens of the policy and the reference, chosen and rejected) and the expected batch values: the mean
loss over pairs, TRL's metrics, and the gradient of the mean loss with respect to each pair's summed
policy log-probs (chosen and rejected), by central finite differences in float64.

Formulas (z = beta * logits; logits = (pi_c - pi_r) - (ref_c - ref_r)):
  dpo      sigmoid, Rafailov et al. 2023 eq. 7; cDPO label smoothing eps (Mitchell 2023, eq. 3):
           -(1-eps) log sigmoid(z) - eps log sigmoid(-z)          (TRL loss_type="sigmoid")
  dpo_norm open-instruct's: the same with every log-prob averaged over the response tokens,
           policy and reference alike; rewards = beta * averaged log-ratios
  robust   Chowdhury et al. 2024: (-(1-eps) log sigmoid(z) + eps log sigmoid(-z)) / (1 - 2 eps)  (TRL "robust")
  hinge    RSO, Liu et al. 2023: max(0, 1 - z)                           (TRL "hinge")
  ipo      Azar et al. 2023 eq. 17: (logits - 1/(2 beta))^2, log-probs averaged over tokens (TRL "ipo")
  simpo    Meng et al. 2024, reference-free: z = beta (avg pi_c - avg pi_r) - gamma, loss as dpo with
           eps; rewards = beta * averaged policy log-probs                 (TRL CPOTrainer "simpo")
  sft term sft_weight * (-mean log-prob of the chosen response tokens), added to any of them
"""
import json
import os
import numpy as np

AVERAGED = {"dpo_norm", "ipo", "simpo"}
REFERENCE_FREE = {"simpo"}


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def pair_values(case, pc, pr, rc, rr, nc, nr):
    """Loss and rewards of one pair from the SUMMED log-probs and the token counts."""
    t = case["type"]
    beta = case["beta"]
    eps = case.get("label_smoothing", 0.0)
    if t in AVERAGED:
        pc, pr, rc, rr = pc / nc, pr / nr, rc / nc, rr / nr
    if t in REFERENCE_FREE:
        z = beta * (pc - pr) - case.get("gamma", 0.0)
        loss = -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z)
        chosen_reward, rejected_reward = beta * pc, beta * pr
    else:
        logits = (pc - pr) - (rc - rr)
        z = beta * logits
        if t in ("dpo", "dpo_norm"):
            loss = -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z)
        elif t == "robust":
            loss = (-(1 - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) / (1 - 2 * eps)
        elif t == "hinge":
            loss = max(0.0, 1.0 - z)
        elif t == "ipo":
            loss = (logits - 1.0 / (2.0 * beta)) ** 2
        else:
            raise ValueError(t)
        chosen_reward, rejected_reward = beta * (pc - rc), beta * (pr - rr)
    return loss, chosen_reward, rejected_reward, pc, pr


def batch_loss(case, sums):
    total = 0.0
    w = case.get("sft_weight", 0.0)
    for (pc, pr, rc, rr, nc, nr) in sums:
        loss = pair_values(case, pc, pr, rc, rr, nc, nr)[0]
        total += loss + w * (-pc / nc)
    return total / len(sums)


def expected(case):
    sums = [(float(np.sum(p["policy_chosen"])), float(np.sum(p["policy_rejected"])),
             float(np.sum(p["reference_chosen"])), float(np.sum(p["reference_rejected"])),
             len(p["policy_chosen"]), len(p["policy_rejected"])) for p in case["pairs"]]
    rows = [pair_values(case, *s) for s in sums]
    chosen = np.array([r[1] for r in rows])
    rejected = np.array([r[2] for r in rows])
    out = {
        "loss": batch_loss(case, sums),
        "rewards/chosen": float(chosen.mean()),
        "rewards/rejected": float(rejected.mean()),
        "rewards/accuracies": float((chosen > rejected).mean()),
        "rewards/margins": float((chosen - rejected).mean()),
        "logps/chosen": float(np.mean([r[3] for r in rows])),
        "logps/rejected": float(np.mean([r[4] for r in rows])),
    }
    h = 1e-6
    grads = {"grad_policy_chosen": [], "grad_policy_rejected": []}
    for k in range(len(sums)):
        for name, index in (("grad_policy_chosen", 0), ("grad_policy_rejected", 1)):
            up = [list(s) for s in sums]
            down = [list(s) for s in sums]
            up[k][index] += h
            down[k][index] -= h
            grads[name].append((batch_loss(case, up) - batch_loss(case, down)) / (2 * h))
    out.update(grads)
    return out


def random_pairs(rng, count, shift):
    pairs = []
    for _ in range(count):
        nc, nr = rng.integers(1, 9), rng.integers(1, 9)
        ref_c = -rng.uniform(0.05, 3.0, nc)
        ref_r = -rng.uniform(0.05, 3.0, nr)
        pairs.append({
            "policy_chosen": [round(float(v), 6) for v in ref_c + rng.normal(shift, 0.3, nc)],
            "policy_rejected": [round(float(v), 6) for v in ref_r + rng.normal(-shift, 0.3, nr)],
            "reference_chosen": [round(float(v), 6) for v in ref_c],
            "reference_rejected": [round(float(v), 6) for v in ref_r],
        })
    return pairs


def main():
    rng = np.random.default_rng(13)
    hand = [  # small hand-made pairs: equal policy and reference, one clear preference, one against
        {"policy_chosen": [-1.0, -2.0], "policy_rejected": [-1.5, -0.5, -1.0],
         "reference_chosen": [-1.0, -2.0], "reference_rejected": [-1.5, -0.5, -1.0]},
        {"policy_chosen": [-0.5, -0.25], "policy_rejected": [-3.0],
         "reference_chosen": [-1.0, -1.0], "reference_rejected": [-2.0]},
        {"policy_chosen": [-2.5], "policy_rejected": [-0.75, -0.5],
         "reference_chosen": [-2.0], "reference_rejected": [-1.0, -1.0]},
    ]
    generated = random_pairs(rng, 6, 0.2)
    cases = []
    settings = [
        {"type": "dpo", "beta": 0.1},
        {"type": "dpo", "beta": 0.5, "label_smoothing": 0.1},
        {"type": "dpo", "beta": 0.1, "sft_weight": 1.0},
        {"type": "dpo_norm", "beta": 5.0},
        {"type": "dpo_norm", "beta": 5.0, "sft_weight": 0.5},
        {"type": "robust", "beta": 0.1, "label_smoothing": 0.2},
        {"type": "hinge", "beta": 0.1},
        {"type": "hinge", "beta": 2.0},
        {"type": "ipo", "beta": 0.1},
        {"type": "ipo", "beta": 1.0},
        {"type": "simpo", "beta": 2.0, "gamma": 0.5},
        {"type": "simpo", "beta": 2.5, "gamma": 1.0, "label_smoothing": 0.1, "sft_weight": 0.2},
    ]
    for s in settings:
        for name, pairs in (("hand", hand), ("generated", generated)):
            case = dict(s)
            case["name"] = s["type"] + "-" + name
            case["pairs"] = pairs
            case["expected"] = expected(case)
            cases.append(case)
    here = os.path.dirname(os.path.abspath(__file__))
    target = os.path.join(here, "..", "..", "plugin-dpo", "src", "test", "resources", "io", "anneal", "dpo",
                          "preference-loss-fixtures.json")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as f:
        json.dump({"generator": "tools/dpo/preference_loss_fixtures.py", "cases": cases}, f, indent=1)
        f.write("\n")
    print("wrote", len(cases), "cases to", os.path.normpath(target))


if __name__ == "__main__":
    main()
