"""K-fold cross-validation splits of the labelled slices, stratified by the findings present.

Slices are grouped by which of GGO, consolidation and effusion they hold and dealt out
group by group, rarest findings first (effusion, then consolidation), in a seeded order
within each group. Each slice goes to the fold that so far holds the fewest slices with
its rarest finding, then with its next finding, then the fewest slices at all (ties: the
seeded order), never to a full fold; so the folds are disjoint, cover every slice once,
differ in size by at most one, and the count of each finding differs by at most about one
between folds.
"""

from __future__ import annotations

import random

import numpy as np

from ..errors import DataError


def presence_key(label: np.ndarray) -> tuple[int, int, int]:
    """(effusion, consolidation, GGO) present on a label map, rarest finding first."""
    return (int((label == 3).any()), int((label == 2).any()), int((label == 1).any()))


def kfold_split(labels: np.ndarray | list[np.ndarray], k: int = 5, seed: int = 0) -> list[list[int]]:
    """Indices of the held-out slices of each of ``k`` folds (each list sorted).

    Parameters
    ----------
    labels
        Label maps (0 background, 1 GGO, 2 consolidation, 3 effusion), one per slice.
    k
        Number of folds (at least 2, at most the number of slices).
    seed
        Seed of the shuffle inside each group of slices with the same findings.
    """
    n = len(labels)
    if k < 2 or k > n:
        raise DataError(f"Cannot make {k} folds of {n} slices: use 2 to {n} folds.")
    rng = random.Random(seed)
    keys = [presence_key(np.asarray(lab)) for lab in labels]
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    cap = -(-n // k)
    folds: list[list[int]] = [[] for _ in range(k)]
    counts = np.zeros((k, 3), dtype=int)
    tiebreak = list(range(k))
    rng.shuffle(tiebreak)
    for key in sorted(groups, reverse=True):
        idx = groups[key]
        rng.shuffle(idx)
        for i in idx:
            open_folds = [f for f in range(k) if len(folds[f]) < cap]
            best = min(open_folds, key=lambda f: (tuple(counts[f, j] if key[j] else 0 for j in range(3)),
                                                  len(folds[f]), tiebreak[f]))
            folds[best].append(i)
            counts[best] += key
    return [sorted(f) for f in folds]


def fold_train_val(folds: list[list[int]], fold: int) -> tuple[list[int], list[int]]:
    """(train, val) indices of fold ``fold``: val is that fold, train all the others."""
    if not 0 <= fold < len(folds):
        raise DataError(f"Fold {fold} does not exist: use 0 to {len(folds) - 1}.")
    val = list(folds[fold])
    train = sorted(i for f, idx in enumerate(folds) if f != fold for i in idx)
    return train, val
