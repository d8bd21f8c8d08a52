"""Which per-target maps an output folder holds, read from scores.h5 with how to draw each."""
import json
from dataclasses import dataclass, field

import numpy as np

from features.errors import InputError

from ..stats import normalize_r

MAPS = ("r", "normalized_r", "best_layer", "best_instruction", "unique_variance", "shared_variance",
        "significant", "noise_ceiling")
# not significant is the absence of a finding: near white, never a colour as loud as the finding's
SIGNIFICANCE_COLORS = {0: "whitesmoke", 1: "crimson"}


@dataclass
class TargetMap:
    """One map ready to draw: per-target values of one subject and how to show them."""

    name: str                    # file stem, e.g. "best_layer_sub-01_qwen_caption"
    subject: str
    values: np.ndarray           # (n_targets,), NaN = not drawn
    title: str
    style: dict = field(default_factory=dict)   # keyword arguments of plot_flatmap

    @property
    def categorical(self):
        return self.style.get("categorical", False)


def fitted_pairs(scores, subject):
    """(model, instruction) pairs of one subject's layer fits."""
    pairs = []
    for model in scores.keys(subject):
        if model in ("valid", "rois", "mask", "joint", "noise_ceiling"):
            continue
        pairs += [(model, i) for i in scores.keys(f"{subject}/{model}") if not i.startswith("best_instruction")]
    return pairs


def _selected(values, wanted):
    return [v for v in values if not wanted or v in wanted]


def _layer_values(scores, key, name, layer):
    if layer in (None, "best"):
        return scores.read(key, f"best_layer_{name}"), "at each target's CV-best layer"
    if f"{key}/layer_{layer}" not in scores:
        raise InputError(f"{scores.path}: field '{key}/layer_{layer}' does not exist; fitted layers are "
                         f"{', '.join(k for k in scores.keys(key) if k[len('layer_'):].isdigit())}.")
    return scores.read(f"{key}/layer_{layer}", name), f"at layer {layer}"


def _significance(scores, key, layer, threshold):
    """q-values of the map at ``layer``, or None when the analysis ran no permutations."""
    name = "best_layer_q_perm" if layer in (None, "best") else f"layer_{layer}/q_perm"
    return scores.read(key, name) if f"{key}/{name}" in scores else None


def _ceiling(scores, subject):
    key = f"{subject}/noise_ceiling/ceiling"
    return (scores.read(key), scores.attrs(key).get("method", "")) if key in scores else (None, None)


def layer_maps(scores, subject, kind, models=None, instructions=None, layer="best", threshold=0.05,
               ceiling_threshold=0.05, only_significant=True):
    """Maps of one subject's layer fits: r, normalized_r, best_layer or significant.

    Returns
    -------
    list of TargetMap (empty when the folder lacks what the kind needs, e.g. a ceiling)
    """
    maps = []
    suffix = "" if layer in (None, "best") else f"_layer-{layer}"
    for model, instruction in fitted_pairs(scores, subject):
        if model not in _selected([model], models) or instruction not in _selected([instruction], instructions):
            continue
        key = f"{subject}/{model}/{instruction}"
        name, where = f"{kind}_{subject}_{model}_{instruction}{suffix}", f"{subject} · {model} · {instruction}"
        r, at = _layer_values(scores, key, "test_r", layer)
        q = _significance(scores, key, layer, threshold)
        if kind == "r":
            maps.append(TargetMap(name, subject, r, f"{where}: test r {at}",
                                  dict(cmap="inferno", vmin=0, colorbar_label="test r")))
        elif kind == "normalized_r":
            ceiling, method = _ceiling(scores, subject)
            if ceiling is not None:
                maps.append(TargetMap(name, subject, normalize_r(r, ceiling, ceiling_threshold),
                                      f"{where}: test r / noise ceiling ({method}) {at}; grey: ceiling ≤ "
                                      f"{ceiling_threshold:g}",
                                      dict(cmap="inferno", vmin=0, vmax=1, colorbar_label="normalized r")))
        elif kind == "significant" and q is not None:
            maps.append(TargetMap(name, subject, np.where(np.isfinite(q), (q < threshold).astype(float), np.nan),
                                  f"{where}: block-permutation test of test r {at}, BH-FDR",
                                  dict(categorical=True, labels={0: "not significant", 1: f"q < {threshold:g}"},
                                       category_colors=SIGNIFICANCE_COLORS)))
        elif kind == "best_layer":
            maps.append(_best_layer_map(scores, key, name, where, q if only_significant else None, threshold))
    return maps


def _best_layer_map(scores, key, name, where, q, threshold):
    best = scores.read(key, "best_layer").astype(float)
    best[best < 0] = np.nan
    note = ""
    if q is not None:
        best[~(q < threshold)] = np.nan
        note = f"; targets with q < {threshold:g} only"
    n_layers = scores.attrs(key.rsplit("/", 1)[0]).get("n_layers")
    labels = {int(k): f"layer {int(k)}" + (f" (depth {k / (n_layers - 1):.2f})" if n_layers and n_layers > 1 else "")
              for k in np.unique(best[np.isfinite(best)])}
    return TargetMap(name, key.split("/")[0], best, f"{where}: layer with the best CV score{note}",
                     dict(categorical=True, labels=labels, category_cmap="viridis"))


def best_instruction_maps(scores, subject, models=None, threshold=0.05, only_significant=True):
    """Per model, the instruction whose CV-best layer scores best in CV, per target."""
    maps = []
    for model in _selected(sorted({m for m, _ in fitted_pairs(scores, subject)}), models):
        key = f"{subject}/{model}"
        if f"{key}/best_instruction" not in scores:
            continue
        best = scores.read(key, "best_instruction").astype(float)
        best[best < 0] = np.nan
        names = json.loads(scores.attrs(f"{key}/best_instruction")["instructions"])
        note = ""
        if only_significant and f"{key}/best_instruction_q_perm" in scores:
            best[~(scores.read(key, "best_instruction_q_perm") < threshold)] = np.nan
            note = f"; targets with q < {threshold:g} only"
        maps.append(TargetMap(f"best_instruction_{subject}_{model}", subject, best,
                              f"{subject} · {model}: instruction with the best CV score{note}",
                              dict(categorical=True, labels=dict(enumerate(names)))))
    return maps


def partition_maps(scores, subject, kind, joints=None):
    """Unique variance of each band (or the shared variance) of every two-band joint fit."""
    maps = []
    if f"{subject}/joint" not in scores:
        return maps
    for joint in _selected(scores.keys(f"{subject}/joint"), joints):
        key = f"{subject}/joint/{joint}/partition"
        if key not in scores:
            continue
        attrs = scores.attrs(key)
        parts = [("shared", "shared")] if kind == "shared_variance" else [("unique_a", attrs["band_a"]),
                                                                            ("unique_b", attrs["band_b"])]
        for part, label in parts:
            values = scores.read(key, part)
            # a few targets with a very negative single-band R² give unique parts above 1: keep them off the scale
            top = float(np.nanpercentile(values, 99)) if np.isfinite(values).any() else 1.0
            maps.append(TargetMap(f"{kind}_{subject}_{joint}_{part}", subject, values,
                                  f"{subject} · {joint}: {part.replace('_', ' ')} variance ({label}), test R²",
                                  dict(cmap="viridis", vmin=0, vmax=max(top, 1e-3), colorbar_label="test R²")))
    return maps


def ceiling_maps(scores, subject):
    ceiling, method = _ceiling(scores, subject)
    if ceiling is None:
        return []
    return [TargetMap(f"noise_ceiling_{subject}", subject, ceiling, f"{subject}: noise ceiling of test r ({method})",
                      dict(cmap="viridis", vmin=0, colorbar_label="ceiling r"))]
