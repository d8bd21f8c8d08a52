"""One analysis, end to end: stores and fMRI in, one output folder out.

The folder is written under a temporary name and renamed when complete, so a failed or killed
run never leaves something that looks finished, and an existing folder is replaced only with
``overwrite``.
"""
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from himalaya.backend import set_backend
from tqdm import tqdm

from features.errors import InputError
from features.store import FeatureStore
from instructions import NO_INSTRUCTION, resolve

from .config import DEFAULTS, expand_path, flatmap_kinds, parse_list
from .design import layer_design, load_subject, stack
from .outputs.alignment import (add_fdr, add_normalized, best_instruction_table, best_layer_map_significance,
                                best_layer_table, mark_best_layers, roi_rows, to_frame)
from .outputs.figures import plot_layer_roi_heatmap
from .outputs.folder import atomic_folder, refuse_existing
from .outputs.group_tests import group_tests
from .outputs.report import write_report
from .outputs.scores_file import ScoresFile
from .partition import VariancePartition, roi_partition_rows
from .ridge import fit_banded_ridge, fit_ridge
from .ridge._distributed import launcher_world, main_process_first
from .roi_sets import rois_for_subject
from .stats import (block_permutations, cross_subject_ceiling, explainable_variance, fdr_bh, permutation_test,
                    split_half_reliability)
from .versions import library_versions

log = logging.getLogger(__name__)


def output_folder(config):
    return Path(config["out"] or Path("results") / config["name"])


def run_analysis(config, overwrite=False):
    """Fit every (model, instruction, layer) for every subject and write the output folder.

    After the fits: block-permutation tests of every fit, noise ceilings (repeats or across
    subjects), best-layer and best-instruction maps, variance partitions of two-band joint fits,
    across-subject tests, the layer hierarchy, flatmaps and the report (report.html, report.md).

    Returns
    -------
    out : Path of the finished folder
    best : DataFrame of best_layers.csv
    """
    out = output_folder(config)
    refuse_existing(out, overwrite)
    _set_backend(config["backend"])
    rank, _ = launcher_world()
    on_cuda = config["backend"] == "torch_cuda"
    if config["demo"] is not None:
        from .demo.build import ensure_demo
        with main_process_first(on_cuda):
            ensure_demo(config["cache_dir"], config["demo"] or {})
    if config["stimuli"]:
        extract_missing(config)
    stores = open_stores(config)
    prompts, instructions = _instructions(config, stores)
    layers = {model: _layers(config, store, instructions[model]) for model, store in stores.items()}
    n_layers = {model: _n_stored_layers(store, instructions[model]) for model, store in stores.items()}

    # Under a launcher every process runs every fit (the ridge fits split their targets across processes
    # and gather them, so all must take part), but only rank 0 writes the output folder and draws the
    # figures; the others write their tables into a temporary folder that is deleted.
    try:
        folder = atomic_folder(out, overwrite) if rank == 0 else tempfile.TemporaryDirectory(prefix=f"rank{rank}-")
        with folder as partial:
            best = _write_outputs(config, Path(partial), stores, prompts, instructions, layers, n_layers)
    finally:
        for store in stores.values():
            store.close()
    log.info("finished: %s", out)
    return out, best


def _write_outputs(config, partial, stores, prompts, instructions, layers, n_layers):
    """Every fit, table, figure and the report, into the (temporary) folder ``partial``; returns best_layers."""
    _write_inputs(partial, config)
    rows, partitions, test_sets = [], [], {}
    with ScoresFile(partial / "scores.h5", "w") as scores:
        scores.write_root(_jsonable(config), library_versions(), prompts)
        for subject in _subjects(config):
            subject_rows, subject_partitions, test_sets[subject] = _fit_subject(
                config, subject, stores, instructions, layers, n_layers, scores, partial)
            rows += subject_rows
            partitions += subject_partitions
        ceiling_of = _noise_ceilings(config, scores, test_sets)
        table = _alignment_table(config, rows, scores, ceiling_of)
        map_significance = best_layer_map_significance(scores, config["fdr_q"])
    best = _write_tables(partial, table, partitions, map_significance)
    if launcher_world()[0] > 0:   # another process's folder, deleted: it needs the fits, not the figures
        return best
    figures = _heatmaps(table, partial)
    _analyses(config, partial)
    write_report(partial)
    log.info("wrote %d figures", len(figures))
    return best


def _set_backend(name):
    if name not in ("numpy", "torch", "torch_cuda", "cupy"):
        raise InputError(f"--backend: unknown backend '{name}'; known: numpy, torch, torch_cuda, cupy.")
    try:
        set_backend(name, on_error="raise")
    except Exception as err:  # himalaya raises various errors for a missing torch or CUDA
        raise InputError(f"--backend: '{name}' is not usable on this machine ({err}).") from None


def extract_missing(config):
    """Extract the features each model's store lacks from the movies in ``stimuli`` (nothing if complete).

    One clip per TR of the fMRI runs (``extraction.tr``, else the first run's ``tr``); clips already in a
    store are skipped, and a store written with other settings is an error naming it.
    """
    from extractors.run import ensure_features

    base = Path(config["config_file"]).parent
    stimuli = expand_path(config["stimuli"], config, base)
    folder = expand_path(config["features_dir"] or "features", config, base)
    settings = dict(config["extraction"] or {})
    tr = settings.pop("tr", None) or _first_tr(config)
    paths = config["model_paths"] or {}
    for model in parse_list(config["models"]):
        source = expand_path(paths[model], config, base) if model in paths else model
        if model in paths and not source.is_dir():
            raise InputError(f"{config['config_file']}: field 'model_paths.{model}': no model folder {source}.")
        store = ensure_features(stimuli, tr, source, config["instructions"], folder, name=model,
                                instruction_files=parse_list(config["instruction_files"]), **settings)
        log.info("features store %s is complete", store)


def _first_tr(config):
    for subject in config["subjects"].values():
        for run in (subject or {}).get("runs") or []:
            if isinstance(run, dict) and run.get("tr"):
                return float(run["tr"])
    raise InputError(f"{config['config_file']}: field 'extraction.tr' is needed to extract features (no run "
                     f"gives its tr).")


def open_stores(config):
    """One FeatureStore per requested model from ``<features_dir>/<model>.h5``."""
    folder = expand_path(config["features_dir"] or "features", config, Path(config["config_file"]).parent)
    models = parse_list(config["models"])
    available = sorted(p.stem for p in folder.glob("*.h5")) if folder.is_dir() else []
    if not models:
        raise InputError(f"{config['config_file']}: field 'models' is empty; stores in {folder}: "
                         f"{', '.join(available) or 'none'}.")
    unknown = [m for m in models if m not in available]
    if unknown:
        raise InputError(f"--model: unknown model '{unknown[0]}' (no features store {folder / unknown[0]}.h5); "
                         f"known: {', '.join(available) or 'none'}.")
    stores = {}
    for model in models:
        stores[model] = FeatureStore(folder / f"{model}.h5")
        log.info("read features store %s (%s)", stores[model].path, ", ".join(stores[model].instructions()))
    return stores


def _instructions(config, stores):
    """The prompts asked for, and per model the instructions fitted.

    A baseline's store (VideoMAE, AST, X-CLIP+CLAP: features computed without an instruction) holds
    only the no-instruction control ``none``; it is fitted under ``none`` whatever ``instructions`` asks.

    Returns
    -------
    prompts : dict name -> prompt text, every instruction fitted
    per_model : dict model -> list of instruction names
    """
    names = config["instructions"]
    extra = parse_list(config["instruction_files"])
    baselines = {m for m, s in stores.items() if s.instructions() == [NO_INSTRUCTION]}
    instructed = {m: s for m, s in stores.items() if m not in baselines}
    if names == "all" or names == ["all"]:
        names = sorted(set.intersection(*(set(s.instructions()) - {NO_INSTRUCTION} for s in instructed.values()))
                       if instructed else [NO_INSTRUCTION])
    prompts = resolve(names, extra_files=extra)
    per_model = {m: ([NO_INSTRUCTION] if m in baselines else list(prompts)) for m in stores}
    if baselines:
        log.info("baseline store(s) without instructions, fitted under '%s': %s", NO_INSTRUCTION,
                 ", ".join(sorted(baselines)))
        prompts = {**prompts, NO_INSTRUCTION: ""}
    for model, store in instructed.items():
        for name, prompt in prompts.items():
            if name not in per_model[model]:
                continue
            if name not in store.instructions():
                raise InputError(f"{store.path}: field '{name}' does not exist; this store holds "
                                 f"{', '.join(store.instructions())}.")
            if store.prompt(name) != prompt:
                raise InputError(f"{store.path}: field '{name}' was computed with the prompt "
                                 f"{store.prompt(name)!r}, not {prompt!r}.")
    return prompts, per_model


def _layers(config, store, instructions):
    first = next(iter(instructions))
    stored = store.layers(first, store.runs(first)[0])
    wanted = config["layers"]
    if wanted in ("all", None, ["all"]):
        return stored
    if isinstance(wanted, int):
        wanted = [wanted]
    try:
        wanted = [int(k) for k in parse_list(wanted)]
    except (TypeError, ValueError):
        raise InputError(f"--layers: expected 'all' or a comma list of layer indices such as 0,8,16, found "
                         f"{config['layers']!r} (config key 'layers' in {config['config_file']}).") from None
    if not wanted:
        raise InputError(f"--layers: expected 'all' or a comma list of layer indices, found {config['layers']!r}.")
    missing = [k for k in wanted if k not in stored]
    if missing:
        raise InputError(f"{store.path}: --layers asks for layer {missing[0]}, stored layers are "
                         f"{stored[0]}..{stored[-1]}.")
    return wanted


def _n_stored_layers(store, instructions):
    """Layers the store holds: depth is layer / (n - 1) whatever subset of layers is fitted."""
    first = next(iter(instructions))
    return max(store.layers(first, store.runs(first)[0])) + 1


def _subjects(config):
    if not config["subjects"]:
        raise InputError(f"{config['config_file']}: field 'subjects' is empty.")
    return list(config["subjects"])


def _fit_subject(config, subject, stores, instructions, layers, n_layers, scores, out):
    """Every layer fit, best-layer/instruction maps, repeat ceilings and joint fits of one subject.

    Returns
    -------
    rows : list of alignment rows
    partitions : list of variance-partition rows
    test_set : dict test run -> responses (n_TR, n_targets), for the cross-subject ceiling
    """
    data = load_subject(config, subject, _feature_rows(stores, instructions))
    train, test = data.train, data.test
    if (~data.valid).any():
        log.warning("%s: %d of %d targets are NaN or constant in some training run; excluded and scored NaN",
                    subject, int((~data.valid).sum()), data.n_targets)
    if data.untestable.any():
        log.warning("%s: %d targets are NaN or constant in a test run only (%s); fitted, their test scores are NaN",
                    subject, int(data.untestable.sum()), ", ".join(data.run_names[i] for i in test))
    rois, dropped = rois_for_subject(config, data)
    if dropped:
        log.warning("%s: ROI(s) with no valid targets, skipped: %s", subject, ", ".join(dropped))
    if not rois:
        raise InputError(f"{config['config_file']}: field 'rois' leaves no ROI with a fitted target of {subject} "
                         f"({data.files[0]} and its runs); skipped: {', '.join(dropped)}.")
    _write_subject(scores, subject, data, train, test, rois, config)
    # a target NaN or constant only in a test run is fitted; its test rows enter as zeros and are scored NaN
    Y = [np.nan_to_num(b[:, data.valid]) if i in test else b[:, data.valid] for i, b in enumerate(data.bold)]
    untestable = data.untestable[data.valid]
    Y_train, run_of_row = stack(Y, train)
    groups = data.cv_groups(run_of_row)
    Y_test, _ = stack(Y, test)
    fit_args = dict(alphas=config["alphas"], n_folds=config["cv_folds"],
                    n_targets_batch=config["n_targets_batch"], Y_in_cpu=config["backend"] == "torch_cuda")
    significance = _Significance(config, [Y[i].shape[0] for i in test], rois, data.valid)
    scores.attrs(subject).update(n_permutations=significance.n_permutations, permutations_exact=significance.exact)
    rows = []
    jobs = [(m, i, k) for m in stores for i in instructions[m] for k in layers[m]]
    for model, instruction, layer in tqdm(jobs, desc=f"{subject} ridge per layer", unit="layer"):
        X = layer_design(stores[model], instruction, layer, data, config["delays"], config["trim"])
        X_train, _ = stack(X, train)
        X_test, _ = stack(X, test)
        result = _untested(fit_ridge(X_train, Y_train, groups, X_test, Y_test, **fit_args,
                                     memory_gb=config["memory_gb"], pca_components=config["pca_components"],
                                     return_prediction=significance.permutations is not None), untestable)
        key = f"{subject}/{model}/{instruction}/layer_{layer}"
        scores.write_fit(key, result, data.valid, n_features=X_train.shape[1])
        roi_p = significance.test(scores, key, Y_test, result)
        full = {name: scores.read(key, name) for name in ("test_r", "test_r2", "cv_score")}
        if f"{key}/q_perm" in scores:
            full["q_perm"] = scores.read(key, "q_perm")
        rows += roi_rows(subject, model, instruction, layer, n_layers[model], full, rois, roi_p,
                         significance.n_permutations, config["fdr_q"])
    _best_maps(config, scores, subject, data, stores, instructions, layers, n_layers, rois, out)
    _repeat_ceiling(config, scores, subject, data, test)
    partitions = []
    for joint in config["joint"]:
        partitions += _fit_joint(config, joint, subject, data, stores, (train, test, Y_train, groups, Y_test),
                                 scores, fit_args, rois, untestable)
    log.info("%s: wrote %d layer fits to %s", subject, len(jobs), out / "scores.h5")
    return rows, partitions, _test_responses(data, test)


def _untested(result, untestable):
    """Test scores of the targets a test run cannot score (NaN or constant there) set to NaN."""
    for name in ("test_r", "test_r2", "test_r2_split"):
        values = getattr(result, name)
        if values is not None:
            values = np.array(values, dtype=np.float32)
            values[..., untestable] = np.nan
            setattr(result, name, values)
    return result


def _test_responses(data, test):
    """Test run name -> responses (n_TR, n_targets), NaN for invalid targets; repeats ("#2") left out."""
    responses = {}
    for i in test:
        if "#" not in data.run_names[i]:
            full = np.full((data.bold[i].shape[0], data.n_targets), np.nan, dtype=np.float32)
            full[:, data.valid] = data.bold[i][:, data.valid]
            responses[data.run_names[i]] = full
    return responses


def _feature_rows(stores, instructions):
    feature_rows = {}
    for model, store in stores.items():
        for name in instructions[model]:
            for run in store.runs(name):
                feature_rows.setdefault(run, []).append(
                    (str(store.path), int(store.done(name, run).size), store.parameters.get("tr")))
    return feature_rows


def _write_subject(scores, subject, data, train, test, rois, config):
    scores.write_subject(subject, data.valid, [data.run_names[i] for i in train],
                         [data.run_names[i] for i in test], data.files, data.space.describe(), config["cv_folds"],
                         space_kind=data.space.kind, test_run_lengths=[data.bold[i].shape[0] for i in test])
    scores.write_rois(subject, rois)
    if data.space.masker is not None:
        mask_img = data.space.masker.mask_img_
        scores.write_mask(subject, np.asarray(mask_img.dataobj) != 0, mask_img.affine)


class _Significance:
    """The block-permutation test of every fit of one subject, on permutations drawn once."""

    def __init__(self, config, test_lengths, rois, valid):
        self.n_permutations = config["n_permutations"]
        self.tail = config["permutation_tail"]
        self.permutations = None
        self.exact = False
        if self.n_permutations:
            self.permutations = block_permutations(test_lengths, config["permutation_block"], self.n_permutations,
                                                   config["seed"])
            # short test runs: capped at their distinct block orderings, all enumerated
            self.n_permutations, self.exact = self.permutations.n_permutations, self.permutations.exact
        # ROI indices count all targets; the tested arrays hold the valid ones only
        column = np.cumsum(valid) - 1
        self.rois = {roi: column[index] for roi, index in rois.items()}
        self.valid = valid

    def test(self, scores, key, Y_test, result):
        """Write p_perm and q_perm of one fit under ``key``; return the ROI p-values (None if off).

        ``result`` comes from ``fit_ridge(return_prediction=True)``: its own test prediction is permuted.
        """
        if self.permutations is None:
            return None
        tested = permutation_test(Y_test, result.extra["test_prediction"], self.permutations, self.rois,
                                  self.tail)
        scores.write_array(key, "p_perm", tested.p, self.valid)
        scores.write_array(key, "q_perm", fdr_bh(tested.p), self.valid)
        return tested.roi_p


def _best_maps(config, scores, subject, data, stores, instructions, layers, n_layers, rois, out):
    """Per target: the CV-best layer of each (model, instruction), and the CV-best instruction."""
    for model in stores:
        scores.attrs(f"{subject}/{model}")["n_layers"] = n_layers[model]
        for instruction in instructions[model]:
            key = f"{subject}/{model}/{instruction}"
            _, best_r = scores.write_best_layer(key, layers[model], data.valid)
            _flatmap(config, data, best_r, out / f"flatmap_{subject}_{model}_{instruction}.png",
                     f"{subject} · {model} · {instruction}: test r at the CV-best layer", rois)
        if len(instructions[model]) >= 2:
            _best_instruction(scores, f"{subject}/{model}", list(instructions[model]))


def _best_instruction(scores, key, instructions):
    """The instruction whose CV-best layer has the highest CV score, per target (-1 if unfitted)."""
    cv = np.stack([scores.read(f"{key}/{i}", "best_layer_cv_score") for i in instructions])
    fitted = np.isfinite(cv).all(0)
    pick = np.argmax(np.where(np.isfinite(cv), cv, -np.inf), axis=0)
    columns = np.arange(pick.size)
    scores.write_array(key, "best_instruction", np.where(fitted, pick, -1),
                       instructions=json.dumps(instructions))
    for name in ("test_r", "p_perm"):
        if all(f"{key}/{i}/best_layer_{name}" in scores for i in instructions):
            stacked = np.stack([scores.read(f"{key}/{i}", f"best_layer_{name}") for i in instructions])
            scores.write_array(key, f"best_instruction_{name}", np.where(fitted, stacked[pick, columns], np.nan))
    if f"{key}/best_instruction_p_perm" in scores:   # the best-instruction map is a family of its own
        scores.write_array(key, "best_instruction_q_perm", fdr_bh(scores.read(key, "best_instruction_p_perm")))


def _repeat_ceiling(config, scores, subject, data, test):
    """Explainable variance and split-half reliability when a test stimulus was seen twice or more."""
    by_stimulus = {}
    for i in test:
        by_stimulus.setdefault(data.stimulus_runs[i], []).append(i)
    repeated = {s: idx for s, idx in by_stimulus.items() if len(idx) >= 2}
    if not repeated or config["noise_ceiling"]["method"] in ("none", "cross_subject"):
        return
    ev = np.zeros(data.n_targets)
    single = np.zeros(data.n_targets)
    n_rows = 0
    for stimulus, index in repeated.items():
        length = min(data.bold[i].shape[0] for i in index)
        repeats = np.stack([data.bold[i][:length] for i in index])
        ev += explainable_variance(repeats) * length
        single += split_half_reliability(repeats, seed=config["seed"])[1] * length
        n_rows += length
    ev, single = ev / n_rows, single / n_rows
    ev[~data.valid] = single[~data.valid] = np.nan
    key = f"{subject}/noise_ceiling"
    scores.write_array(key, "explainable_variance", ev.astype(np.float32), stimuli=json.dumps(sorted(repeated)))
    scores.write_array(key, "split_half_reliability", single.astype(np.float32))
    scores.write_array(key, "repeat_ceiling", np.sqrt(np.clip(ev, 0, 1)).astype(np.float32))
    log.info("%s: repeat noise ceiling from %s (%d repeats)", subject, ", ".join(sorted(repeated)),
             min(len(i) for i in repeated.values()))


def _noise_ceilings(config, scores, test_sets):
    """Choose each subject's ceiling of r (repeat, split-half or cross-subject) and write it.

    Returns
    -------
    dict subject -> (ceiling (n_targets,), method, variance (n_targets,)) for subjects with a
    ceiling; variance is the unbiased, signed squared ceiling that ROI summaries average
    """
    method = config["noise_ceiling"]["method"]
    cross = None
    if method in ("auto", "cross_subject") and len(test_sets) >= 2:
        cross = _cross_subject(config, scores, test_sets)
    chosen = {}
    for subject in test_sets:
        key = f"{subject}/noise_ceiling"
        if method in ("auto", "repeat") and f"{key}/repeat_ceiling" in scores:
            chosen[subject] = "repeat", scores.read(key, "explainable_variance")
        elif method == "split_half" and f"{key}/split_half_reliability" in scores:
            chosen[subject] = "split_half", scores.read(key, "split_half_reliability")
        elif method in ("auto", "cross_subject") and cross is not None:
            chosen[subject] = "cross_subject", cross
        elif method != "none":
            log.warning("%s: no noise ceiling (method %s needs %s)", subject, method,
                        "two or more subjects" if method == "cross_subject" else "a repeated test run")
            continue
        if subject in chosen:
            name, variance = chosen[subject]
            ceiling = np.sqrt(np.clip(variance, 0, 1)).astype(np.float32)
            scores.write_array(key, "ceiling", ceiling, method=name)
            scores.write_array(key, "ceiling_variance", np.asarray(variance, np.float32))
            chosen[subject] = (ceiling, name, variance)
    return chosen


def _cross_subject(config, scores, test_sets):
    """The cross-subject ceiling over subjects sharing the same test runs and target space.

    Each subject's first presentation of each test run is used, cut to the shortest subject's length.
    """
    runs = list(next(iter(test_sets.values())))
    shapes = {y.shape[1] for responses in test_sets.values() for y in responses.values()}
    if any(list(responses) != runs for responses in test_sets.values()) or len(shapes) != 1:
        log.warning("no cross-subject ceiling: subjects differ in test runs or targets")
        return None
    lengths = {run: min(responses[run].shape[0] for responses in test_sets.values()) for run in runs}
    joined = [np.concatenate([responses[run][:lengths[run]] for run in runs]) for responses in test_sets.values()]
    settings = config["noise_ceiling"]
    result = cross_subject_ceiling(joined, settings["n_bootstrap"],
                                   settings["max_subsets"], settings["extrapolation"], config["seed"])
    key = "noise_ceiling/cross_subject"
    for name in ("ceiling", "ci_low", "ci_high", "curve", "shared_variance"):
        scores.write_array(key, name, getattr(result, name).astype(np.float32))
    scores.write_array(key, "subset_sizes", result.subset_sizes)
    scores.attrs(key).update(method=result.method, subjects=json.dumps(list(test_sets)))
    log.info("cross-subject noise ceiling over %d subjects (%s)", result.n_subjects, result.method)
    return result.shared_variance


def _alignment_table(config, rows, scores, ceiling_of):
    table = mark_best_layers(to_frame(rows, dict.fromkeys(r["roi"] for r in rows)))
    table = add_fdr(table)
    rois = {subject: scores.read_rois(subject) for subject in table["subject"].unique()}

    def test_r(subject, model, instruction, layer):
        return scores.read(f"{subject}/{model}/{instruction}/layer_{layer}", "test_r")
    return add_normalized(table, test_r, ceiling_of, rois, config["ceiling_threshold"])


def _write_tables(out, table, partitions, map_significance):
    """alignment.csv, best_layers.csv and, when they have rows, the instruction, group and partition tables."""
    table.to_csv(out / "alignment.csv", index=False)
    best = best_layer_table(table, map_significance)
    best.to_csv(out / "best_layers.csv", index=False)
    written = ["alignment.csv", "best_layers.csv"]
    for name, frame in (("best_instructions.csv", best_instruction_table(table)),
                        ("group_tests.csv", group_tests(table)),
                        ("variance_partition.csv", pd.DataFrame(partitions))):
        if len(frame):
            frame.to_csv(out / name, index=False)
            written.append(name)
    log.info("wrote %s in %s", ", ".join(written), out)
    return best


def _analyses(config, out):
    """The layer hierarchy and the flatmaps, through the same functions as their command lines."""
    from .flatmap import render_flatmaps
    from .hierarchy import hierarchy_analysis

    hierarchy_analysis(out)
    kinds = flatmap_kinds(config["flatmap"])
    try:
        if kinds:
            render_flatmaps(out, kinds, skip_missing=True)
    except InputError as err:
        # a space without a flat mesh must not cost the fits: the maps can be drawn later
        log.warning("no flatmaps for this space (%s); python -m encoding.flatmap draws them later", err)


def _fit_joint(config, joint, subject, data, stores, split, scores, fit_args, rois, untestable):
    """A banded fit over the joint's bands and, for two bands, the variance partition."""
    train, test, Y_train, groups, Y_test = split
    bands = joint.get("bands", []) if isinstance(joint, dict) else []
    if len(bands) < 2 or any(not {"model", "instruction", "layer"} <= set(b) for b in bands):
        raise InputError(f"{config['config_file']}: field 'joint' entries need a name and two or more bands, each "
                         f"with model, instruction and layer.")
    Xs = []
    for band in bands:
        if band["model"] not in stores:
            raise InputError(f"{config['config_file']}: field 'joint.bands.model' names '{band['model']}', which is "
                             f"not among the models of this run ({', '.join(stores)}).")
        Xs.append(layer_design(stores[band["model"]], band["instruction"], int(band["layer"]), data,
                               config["delays"], config["trim"]))
    Xs_train = [stack(X, train)[0] for X in Xs]
    Xs_test = [stack(X, test)[0] for X in Xs]
    result = _untested(fit_banded_ridge(Xs_train, Y_train, groups, Xs_test, Y_test,
                                        n_iter=config["banded_iterations"], **fit_args), untestable)
    name = joint.get("name") or "+".join(f"{b['model']}:{b['layer']}" for b in bands)
    scores.write_fit(f"{subject}/joint/{name}", result, data.valid, bands=json.dumps(bands))
    log.info("%s: banded fit '%s' over %d bands written", subject, name, len(bands))
    if len(bands) != 2:
        return []
    single = [_single_r2(scores, subject, band, X_train, Y_train, groups, X_test, Y_test, data.valid, fit_args,
                         untestable) for band, X_train, X_test in zip(bands, Xs_train, Xs_test)]
    partition = VariancePartition(scores.read(f"{subject}/joint/{name}", "test_r2"), *single)
    labels = [f"{b['model']}:{b['instruction']}:layer_{b['layer']}" for b in bands]
    key = f"{subject}/joint/{name}/partition"
    for part, values in {"r2_a": partition.r2_a, "r2_b": partition.r2_b, **partition.parts()}.items():
        scores.write_array(key, part, values.astype(np.float32))
    scores.attrs(key).update(band_a=labels[0], band_b=labels[1])
    return roi_partition_rows(partition, rois, subject=subject, joint=name, band_a=labels[0], band_b=labels[1])


def _single_r2(scores, subject, band, X_train, Y_train, groups, X_test, Y_test, valid, fit_args, untestable):
    """Test R^2 of one band alone: the layer fit when the sweep has it, else a fit of its own."""
    key = f"{subject}/{band['model']}/{band['instruction']}/layer_{int(band['layer'])}"
    if key in scores:
        return scores.read(key, "test_r2")
    result = _untested(fit_ridge(X_train, Y_train, groups, X_test, Y_test, **fit_args), untestable)
    full = np.full(valid.shape, np.nan, dtype=np.float32)
    full[valid] = result.test_r2
    return full


def _flatmap(config, data, values, output_file, title, rois):
    if not config["flatmap"] or launcher_world()[0] > 0:   # ranks above 0 draw nothing (run_analysis)
        return
    from .plotting import plot_flatmap
    try:
        plot_flatmap(values, data.space.kind, output_file=output_file, title=title, cmap="inferno",
                     vmin=0, colorbar_label="test r", roi_outlines=rois)
    except InputError as err:
        log.warning("no flatmap for this space: %s", err)
        return
    log.info("wrote %s", output_file)


def _heatmaps(table, out):
    import matplotlib.pyplot as plt
    files = []
    for (subject, model, instruction), part in table.groupby(["subject", "model", "instruction"], sort=False):
        path = out / f"layer_roi_{subject}_{model}_{instruction}.png"
        fig = plot_layer_roi_heatmap(part, f"{subject} · {model} · {instruction}", path)
        plt.close(fig)
        files.append(path.name)
    log.info("wrote %d layer x ROI heatmaps", len(files))
    return files


def _write_inputs(out, config):
    with open(out / "config.yaml", "w") as handle:
        yaml.safe_dump(_jsonable(config), handle, sort_keys=False)
    (out / "versions.json").write_text(json.dumps(library_versions(), indent=2))


def _jsonable(config):
    clean = {k: config[k] for k in list(DEFAULTS) + ["config_file"] if k in config}
    clean["alphas"] = [float(a) for a in np.asarray(config["alphas"])]
    return json.loads(json.dumps(clean, default=str))
