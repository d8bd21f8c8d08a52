"""Which triplets are judged: drawn uniformly with a seed or read from a file, split into train and test,
plus a repeated subset shown again in another order (the judge's own consistency).

Uniform sampling draws unordered triplets of distinct items uniformly without replacement (each triplet at
most once, as the THINGS triplets were), and shows each one in a random order, so that an item's position
in the prompt carries no information. Each part (triplets, split, repeats) has its own random stream
derived from the seed, so changing the test fraction or the number of repeats leaves the triplets as
they were.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import comb
from pathlib import Path

import numpy as np

from features.errors import InputError

_TRIPLETS, _SPLIT, _REPEATS = 0, 1, 2   # random streams derived from the seed


@dataclass
class Plan:
    """Every judgment a collection asks for, in store order.

    Attributes
    ----------
    triplets : int32 array of shape (n_judgments, 3)
        Item indices in the order they are shown.
    test : bool array of shape (n_judgments,)
        Held out from fitting (used by ``evaluate``).
    repeat_of : int32 array of shape (n_judgments,)
        -1 for a first showing; for a repeat, the row of the triplet it shows again (in another order).
    sampling : dict
        How the triplets were chosen (recorded in the store).
    """

    triplets: np.ndarray
    test: np.ndarray
    repeat_of: np.ndarray
    sampling: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.triplets)


def sample_triplets(n_items, n_triplets, random_state=0):
    """Distinct unordered triplets drawn uniformly, each in a random presentation order.

    Returns
    -------
    triplets : int32 array of shape (n_triplets, 3)
    """
    total = comb(n_items, 3)
    if not 0 < n_triplets <= total:
        raise InputError(f"--n-triplets: expected 1 to {total:,} (the distinct triplets of {n_items} items), "
                         f"found {n_triplets:,}.")
    rng = np.random.default_rng([int(random_state), _TRIPLETS])
    if total <= 4 * n_triplets:        # dense: enumerate, then shuffle
        rows = np.array(np.triu_indices(n_items, 1)).T
        every = np.array([(i, j, k) for i, j in rows for k in range(j + 1, n_items)], dtype=np.int64)
        chosen = every[rng.permutation(total)[:n_triplets]]
        return _shuffled(chosen, rng)
    kept = np.zeros((0, 3), np.int64)
    while len(kept) < n_triplets:
        draws = rng.integers(0, n_items, size=(int(1.1 * (n_triplets - len(kept))) + 16, 3))
        draws = draws[(draws[:, 0] != draws[:, 1]) & (draws[:, 0] != draws[:, 2]) & (draws[:, 1] != draws[:, 2])]
        kept = np.concatenate([kept, draws])
        ordered = np.sort(kept, 1)
        keys = (ordered[:, 0] * n_items + ordered[:, 1]) * n_items + ordered[:, 2]
        _, first = np.unique(keys, return_index=True)
        kept = kept[np.sort(first)]    # first draw of each triplet, in draw order
    return kept[:n_triplets].astype(np.int32)   # a uniform draw of 3 positions is already in random order


def _shuffled(triplets, rng):
    order = np.argsort(rng.random(triplets.shape), axis=1)
    return np.take_along_axis(triplets, order, 1).astype(np.int32)


def read_triplet_file(path, items):
    """Triplets from a text file: one per line, three item names separated by tabs or commas.

    Raises
    ------
    InputError
        Missing file, a line without three names, a name the items do not list, or a repeated item.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: triplet file not found.")
    index = items.index()
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        names = [n.strip() for n in line.split("\t" if "\t" in line else ",")]
        if len(names) != 3:
            raise InputError(f"{path}: line {number}: field 'triplet' expected three item names, found {len(names)}.")
        unknown = [n for n in names if n not in index]
        if unknown:
            raise InputError(f"{path}: line {number}: field 'item' names '{unknown[0]}', which the items file "
                             f"does not list.")
        if len(set(names)) < 3:
            raise InputError(f"{path}: line {number}: field 'triplet' repeats an item ({', '.join(names)}); a "
                             f"triplet needs three different items.")
        rows.append([index[n] for n in names])
    if not rows:
        raise InputError(f"{path}: field 'triplet' holds no triplets.")
    return np.array(rows, dtype=np.int32)


def make_plan(triplets, test_fraction=0.1, n_repeats=0, random_state=0, sampling=None) -> Plan:
    """Split triplets into train and test and append the repeated subset.

    Parameters
    ----------
    triplets : int array of shape (n_triplets, 3)
    test_fraction : float in [0, 1)
        Share of the triplets held out for ``evaluate``.
    n_repeats : int
        Triplets shown a second time, drawn from the test split (from all when there is none), each in
        its original order shifted by one or two places, so every item moves.
    random_state : int
    sampling : dict
        How the triplets were chosen, recorded with the split and repeat settings.

    Returns
    -------
    Plan
    """
    triplets = np.asarray(triplets, dtype=np.int32)
    n = len(triplets)
    if not 0 <= float(test_fraction) < 1:
        raise InputError(f"--test-fraction: expected a share in [0, 1), found {test_fraction}.")
    n_test = int(round(float(test_fraction) * n))
    test = np.zeros(n, bool)
    test[np.random.default_rng([int(random_state), _SPLIT]).permutation(n)[:n_test]] = True
    pool = np.flatnonzero(test) if n_test else np.arange(n)
    if not 0 <= int(n_repeats) <= len(pool):
        raise InputError(f"--repeats: expected 0 to {len(pool)} (the triplets of the "
                         f"{'test split' if n_test else 'collection'}), found {n_repeats}.")
    rng = np.random.default_rng([int(random_state), _REPEATS])
    source = np.sort(rng.choice(pool, size=int(n_repeats), replace=False))
    shift = rng.integers(1, 3, size=source.size)
    repeats = np.array([np.roll(triplets[s], k) for s, k in zip(source, shift)], dtype=np.int32).reshape(-1, 3)
    recorded = {**(sampling or {}), "test_fraction": float(test_fraction), "n_repeats": int(n_repeats),
                "seed": int(random_state)}
    return Plan(np.concatenate([triplets, repeats]), np.concatenate([test, test[source]]),
                np.concatenate([np.full(n, -1, np.int32), source.astype(np.int32)]), recorded)
