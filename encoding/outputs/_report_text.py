"""The report's prose: what each section shows and how it was computed."""
from .alignment import SIGNIFICANCE_FAMILIES

SECTION_TEXT = {
    "families": ["Each q-value is Benjamini-Hochberg at `fdr_q` within one of these families, and every table "
                 "and map names the family it reads:"] + [f"*{name}*: {text}" for name, text in
                                                          SIGNIFICANCE_FAMILIES.items()],
    "demo": ("**Embedded demo.** The movie is synthetic, the features come from fixed random networks (not "
             "language models) and the fMRI responses are **simulated** with planted preferred layers per ROI. "
             "Nothing here is a finding about the brain."),
    "best": ["Chosen by the mean cross-validated score inside the training runs; `mean_test_r` is the held-out "
             "score at that layer. `p_perm` is the block-permutation p-value of the ROI's mean test r, `q_perm` "
             "its Benjamini-Hochberg q over the layer × ROI rows of one subject, model and instruction, "
             "`frac_targets_significant` the share of the ROI's targets that the best-layer map paints "
             "significant (each target at its own CV-best layer, BH over that map's targets: the best_layer "
             "family below). Every layer's scores are in `alignment.csv`."],
    "heatmaps": ["Mean test r per layer (rows, 0 = embedding output) and ROI (columns); the white dot marks the "
                 "layer chosen by cross-validation in ROIs where the mean r at that layer is significant (`q_perm` "
                 "< `fdr_q`, roi family). Cross-validation picks a layer in every ROI, noise included, so an ROI "
                 "without signal has no dot; without a permutation test every choice is marked and the title says "
                 "it is untested."],
    "ceiling": ["A noise ceiling is the highest test r a perfect model could reach on a target given its noise, "
                "on the scale of the r reported here (one prediction against single presentations). From a test "
                "movie watched several times: the square root of the explainable variance with the bias correction "
                "for a finite number of repeats (split-half reliability with Spearman-Brown is kept in scores.h5 "
                "too). Across subjects: each subject predicted by the mean of the others, extrapolated to "
                "infinitely many subjects and bootstrapped over subsets of subjects.",
                "Normalized r divides r by the ceiling only where the ceiling exceeds the threshold: below it the "
                "ratio of two noisy small numbers is unstable. Per-target ceilings of pure noise are biased upwards "
                "(the square root of an estimate centred on 0 is positive), so an ROI's ceiling is the square root "
                "of its targets' mean explainable variance, and its normalized r is its mean r over that ceiling. "
                "Nothing is clipped: values slightly above 1 are noise, not a better-than-perfect model."],
    "hierarchy": ["Per ROI, the mean score over normalized depth (0 = embedding output, 1 = last layer); the "
                  "preferred depth is read as the depth of the maximum and as the score-weighted mean depth, with "
                  "95 % bootstrap intervals over the ROI's targets (over subjects for `group` rows). The rank test "
                  "is Spearman's rho between preferred depth and the ROI's level in the sensory-to-association "
                  "ordering, with a one-sided permutation p-value over ROIs; ROIs enter it when they have a level "
                  "and their mean test r at the CV-best layer is significant. With layer weights, a third "
                  "preferred depth: the ROI's mean band weights times depth (`preferred_depth_layer_weights`). "
                  "Rerun with `python -m encoding.hierarchy <folder>` for other options."],
    "instruction": ["Per ROI, the instruction whose CV-best layer has the highest cross-validated score, with "
                    "its held-out test r and the runner-up's."],
    "partition": ["Two feature spaces A and B fitted alone and jointly (banded ridge); on the test runs "
                  "unique A = R²(A+B) − R²(B), unique B = R²(A+B) − R²(A), "
                  "shared = R²(A) + R²(B) − R²(A+B). "
                  "Parts are estimates and can be slightly negative; nothing is clipped."],
    "layer_weights": ["One banded ridge over all layers of a model and instruction, each layer (or group of "
                      "adjacent layers) a band; cross-validation chooses each target's band weights, which sum to 1. "
                      "Per ROI: the weight-averaged depth beside the CV-best layer's depth (both averaged over the "
                      "targets with their positive CV score as weight), the share of targets whose second-largest "
                      "weight exceeds 0.25 (`frac_targets_mixed`), each band's mean weight, and the held-out r of "
                      "the banded fit beside the best single layer's. The banded search includes each layer alone, "
                      "so its CV score is never below the best layer's; its test r can be."],
    "group": ["Each subject contributes its ROI's mean test r at the layer its own cross-validation chose. "
              "`above_zero`: one-sided t-test and Wilcoxon signed-rank test over subjects; `model` and "
              "`instruction`: two-sided paired tests. `n_subjects` is beside every p-value: with few subjects the "
              "Wilcoxon test cannot reach small p-values (at best 2 / 2^n two-sided)."],
    "flatmaps": ["Test r at each target's CV-best layer, the CV-best layer of significant targets, and "
                 "significance masks. More with `python -m encoding.flatmap <folder> --map ...` (PNG or SVG)."],
    "files": ["`scores.h5`: per target and layer: test r, R², CV score, alpha, permutation p and q; best layer "
              "and instruction; noise ceilings; joint fits with per-band splits and variance partitions "
              "(layout in encoding/outputs/scores_file.py)",
              "`alignment.csv`: one row per (subject, model, instruction, layer, roi), with p-values and "
              "normalized r; `best_layers.csv`, `best_instructions.csv`, `group_tests.csv`, "
              "`variance_partition.csv`, `layer_weights.csv`, `hierarchy.csv`, `hierarchy_tests.csv`: the tables "
              "above",
              "`config.yaml`, `versions.json`: what this ran with"],
}


def data_lines(config, spaces, permutations=None, ceilings=None):
    """Bullet lines on the data and the methods' settings, from the config the run saved.

    ``permutations``: subject -> (permutations used, exact), from scores.h5; ``ceilings``: subject -> the
    ceiling it used (``report._ceiling_used``) or None, from scores.h5.
    """
    cv = config.get("cv_folds")
    alphas = config.get("alphas") or []
    lines = [f"models: {', '.join(map(str, config.get('models') or []))}",
             f"subjects: {_subjects_text(config, spaces)}",
             f"held-out test runs (scored only): {', '.join(map(str, config.get('test_runs') or []))}"]
    lines += [f"run {run} cut into {_segments_text(spec)} segments used like runs ({run}:1, ...); the training TRs "
              f"within {max(abs(int(d)) for d in config.get('delays') or [0])} TRs (the longest delay) of a test "
              f"segment are left out, and the run's features are z-scored without the test segments"
              for run, spec in (config.get("segments") or {}).items()]
    lines += ["cross-validation inside the training runs, grouped by stimulus (repeated viewings in one fold): "
              + ("leave one stimulus out" if cv is None else f"{cv} folds"),
              f"features z-scored per run, then FIR delays (TRs) within each run: {config.get('delays')}; "
              f"alphas: {len(alphas)}"
              + (f" from {min(alphas):.3g} to {max(alphas):.3g}" if alphas else "")]
    if config.get("n_permutations"):
        lines.append(f"significance: {config['n_permutations']} block permutations of the test responses in blocks "
                     f"of {config.get('permutation_block')} TRs; Benjamini-Hochberg FDR at q = {config.get('fdr_q')}")
        for subject, (used, exact) in (permutations or {}).items():
            if exact:
                lines.append(f"{subject}: the test runs have only {used} distinct block orderings; all of them "
                             f"were used, an exact test whose p-values cannot go below 1/{used}")
    else:
        lines.append("significance: no permutation test (n_permutations = 0)")
    lines += ceiling_lines(config, ceilings or {})
    lines.append(f"layer hierarchy: {config.get('n_bootstrap')} bootstrap resamples; seed {config.get('seed')}")
    return lines


def _subjects_text(config, spaces):
    """The subjects and what their columns are; subjects whose runs have the same kind of columns share one
    description (without each subject's file name), so 27 participants' ROI files make one line."""
    if not spaces:
        return ", ".join(config.get("subjects") or [])
    by_kind = {}
    for subject, space in spaces.items():
        by_kind.setdefault(str(space).split(" from ")[0], []).append(subject)
    if len(by_kind) == len(spaces):
        return ", ".join(f"{s} ({space})" for s, space in spaces.items())
    return "; ".join(f"{len(subjects)} subject(s) {', '.join(subjects)}: {kind}" for kind, subjects in by_kind.items())


def _segments_text(spec):
    return str(spec) if isinstance(spec, int) else str(len(spec))


def ceiling_lines(config, ceilings):
    """One line per kind of noise ceiling the subjects actually used (what scores.h5 recorded), not the
    config's wish: ``method: auto`` means repeats where a test run was watched twice, else across subjects."""
    settings = config.get("noise_ceiling") or {}
    by_text = {}
    for subject, used in ceilings.items():
        by_text.setdefault(_ceiling_text(used, settings), []).append(subject)
    lines = [f"noise ceiling of {', '.join(subjects)}: {text}" for text, subjects in by_text.items()]
    if any(used is not None for used in ceilings.values()):
        lines.append(f"normalized r where the ceiling exceeds {config.get('ceiling_threshold')} "
                     f"(`ceiling_threshold`; at or below it no ratio is computed)")
    return lines


def _ceiling_text(used, settings):
    if used is None:
        if settings.get("method") == "none":
            return "none (noise_ceiling.method: none)"
        return (f"none (method {settings.get('method', 'auto')}: it needs a test run watched twice or more, or "
                f"two or more subjects)")
    repeats = ", ".join(used.get("stimuli") or []) or "the repeated test runs"
    if used["method"] == "repeat":
        return (f"repeat, from {repeats}: the square root of the explainable variance, bias-corrected for the "
                f"number of repeats")
    if used["method"] == "split_half":
        return f"split-half, from {repeats}: split-half reliability with the Spearman-Brown correction"
    if used["method"] == "cross_subject":
        return (f"cross-subject over {used.get('n_subjects', '?')} subjects, extrapolated to infinitely many "
                f"({used.get('extrapolation') or settings.get('extrapolation')}) with "
                f"{settings.get('n_bootstrap')} bootstraps over subsets of subjects")
    return used["method"]
