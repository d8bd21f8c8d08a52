"""One analysis, end to end: stores and fMRI in, one output folder out.

The folder is written under a temporary name and renamed when complete, so a failed or killed
run never leaves something that looks finished, and an existing folder is replaced only with
``overwrite``.
"""
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from himalaya.backend import set_backend

from features.errors import InputError
from features.store import FeatureStore
from instructions import NO_INSTRUCTION, resolve

from .config import DEFAULTS, expand_path, flatmap_kinds, load_config, parse_list
from .outputs.alignment import (add_fdr, add_normalized, best_instruction_table, best_layer_map_significance,
                                best_layer_table, mark_best_layers, roi_rows, to_frame)
from .outputs.figures import plot_layer_roi_heatmap
from .outputs.folder import atomic_folder, refuse_existing
from .outputs.native_maps import write_native_maps
from .outputs.group_tests import group_tests
from .outputs.report import write_report
from .outputs.scores_file import ScoresFile
from .design import EmptySubjectError, check_run_files
from .partition import VariancePartition, roi_partition_rows
from .ridge import limited_threads
from .ridge._distributed import barrier, launcher_world, main_process_first
from .roi_sets import check_rois, roi_networks
from .stats import block_permutations, cross_subject_ceiling, explainable_variance, fdr_bh, split_half_reliability
from .sweep import WorkFolder, plan_fits, prepare_subject, report_changes, run_pending
from .versions import library_versions

log = logging.getLogger(__name__)


def output_folder(config):
    return Path(config["out"] or Path("results") / config["name"])


def work_folder(config, out):
    """Where the sweep keeps its finished fits: ``work_dir``, else ``<out>.work`` beside the output folder."""
    if config["work_dir"]:
        return expand_path(config["work_dir"], config)
    out = Path(out)
    return out.with_name(out.name + ".work")


def run_analysis(config, overwrite=False, dry_run=False):
    """Fit every (model, instruction, layer) for every subject and write the output folder.

    Every fit is a unit of work (``encoding.sweep``): planned with a fingerprint of what changes its
    numbers, computed in this process or on Dask workers (``workers``, ``scheduler``), and kept in the
    work folder as soon as it is done, so the same command resumes after a kill and reuses every fit
    whose fingerprint matches. Once all exist, the output folder is assembled from them, atomically:
    block-permutation tests, noise ceilings (repeats or across subjects), best-layer and
    best-instruction maps, variance partitions of two-band joint fits, across-subject tests, the layer
    hierarchy, flatmaps and the report (report.html, report.md).

    Parameters
    ----------
    dry_run : bool
        Plan only: return the plan's text (fits per subject and model, how many are done, memory and
        estimated time) and write nothing.

    Returns
    -------
    out : Path of the finished folder (None for a dry run)
    best : DataFrame of best_layers.csv (the plan's text for a dry run)
    """
    if "config_file" not in config:      # a mapping from a notebook: checked as a YAML file is
        config = load_config(config)
    out = output_folder(config)
    if not dry_run:
        refuse_existing(out, overwrite)
    if config["save_models"] and config["pca_components"]:
        raise InputError(f"{config['config_file']}: field 'save_models' cannot keep encoders of fits made on principal "
                         f"components (pca_components is {config['pca_components']}); set one or the other.")
    _set_backend(config["backend"])
    rank, world = launcher_world()
    on_cuda = config["backend"] == "torch_cuda"
    if config["demo"] is not None:
        from .demo.build import ensure_demo
        with main_process_first(on_cuda):
            ensure_demo(config["cache_dir"], config["demo"] or {})
    check_run_files(config)                 # every run's files, before any is read
    check_rois(config)                      # from headers only: an atlas the space lacks stops here
    if config["stimuli"] and not dry_run:
        extract_missing(config)
    if (config["transcript"]["words"] or config["transcript"]["tables"]) and not dry_run:
        from .transcript_stores import ensure_transcript_stores
        with main_process_first(on_cuda):
            ensure_transcript_stores(config)
    stores = open_stores(config)
    try:
        prompts, instructions = _instructions(config, stores)
        layers = {model: _layers(config, store, instructions[model]) for model, store in stores.items()}
        n_layers = {model: _n_stored_layers(store, instructions[model]) for model, store in stores.items()}
        feature_rows = _feature_rows(stores, instructions)
        if dry_run:
            return None, _dry_run(config, out, stores, prompts, instructions, layers, feature_rows)
        with main_process_first(on_cuda):   # rank 0 caches the responses, the others read them
            work = WorkFolder(work_folder(config, out))
            subjects, excluded = _prepare_subjects(config, feature_rows, work)
            specs = plan_fits(config, subjects, stores, prompts, instructions, layers, work)
        barrier(on_cuda)                    # every process has planned before any fit file appears
        if rank == 0:
            report_changes(specs, work)
        run_pending(specs, work, config["workers"], config["scheduler"], rank, world, config["threads"])
        barrier(on_cuda)
        if rank > 0:                        # the fits were collective; rank 0 alone assembles and writes
            return out, None
        # the tables, ceilings and maps are many small array operations: one thread unless the config says
        with atomic_folder(out, overwrite) as partial, limited_threads(config["threads"] or 1):
            best = _write_outputs(config, Path(partial), out, stores, prompts, instructions, layers, n_layers,
                                  subjects, specs, work, excluded)
            if config["save_models"]:
                from .encoders import save_fitted_encoders
                save_fitted_encoders(config, Path(partial), subjects, specs, work, stores, prompts)
    finally:
        for store in stores.values():
            store.close()
    log.info("finished: %s (finished fits kept in %s)", out, work.path)
    return out, best


def _dry_run(config, out, stores, prompts, instructions, layers, feature_rows):
    """The plan's text: nothing is written (the cost model's calibration is cached once per machine)."""
    from .sweep import Subject, array_shapes, attach_hidden_sizes, describe_plan, fit_memory_gb, header_shapes
    from .sweep import load_cost_model, subject_shapes
    from .sweep._plan import subject_key
    from .sweep._work import read_subject_cache

    work = WorkFolder(work_folder(config, out), create=False)
    subjects, shapes = {}, {}
    for name in _subjects(config):
        cache = work.subjects / f"{name}-{subject_key(config, name, feature_rows)}.h5"
        if cache.is_file():
            data, rois, dropped, content = read_subject_cache(cache, with_space=False)
            subjects[name] = Subject(data, rois, dropped, cache, content)
            shapes[name] = subject_shapes(subjects[name])
        else:   # never prepared: no fit of it can be done; sizes from the files' headers
            shapes[name] = header_shapes(config, name, feature_rows)
            subjects[name] = Subject(None, {}, [], cache, "not prepared", shapes[name]["store_runs"])
    specs = attach_hidden_sizes(plan_fits(config, subjects, stores, prompts, instructions, layers, work), stores)
    model = load_cost_model(config["cache_dir"])

    def estimate(spec):
        shape = array_shapes(spec, shapes)
        return model.seconds(shape), fit_memory_gb(shape, config["memory_gb"], config["n_targets_batch"])
    return describe_plan(specs, work, estimate, config["backend"])


def _write_outputs(config, partial, out, stores, prompts, instructions, layers, n_layers, subjects, specs, work,
                   excluded=None):
    """Every table, figure and the report from the finished fits, into the temporary folder ``partial``
    (``out`` is the final folder, named in the log); returns best_layers. ``excluded``: subject -> the sentence
    that left it out, recorded in scores.h5 for the report."""
    _write_inputs(partial, config)
    rows, partitions, weighted, test_sets = [], [], [], {}
    with ScoresFile(partial / "scores.h5", "w") as scores:
        scores.write_root(_jsonable(config), library_versions(), prompts)
        scores.attrs().update(excluded_subjects=json.dumps(excluded or {}))
        for name, subject in subjects.items():
            subject_rows, subject_partitions, subject_weighted, test_sets[name] = _assemble_subject(
                config, name, subject, [spec for spec in specs if spec["subject"] == name], work, scores, stores,
                instructions, layers, n_layers, partial)
            rows += subject_rows
            partitions += subject_partitions
            weighted += subject_weighted
        ceiling_of = _noise_ceilings(config, scores, test_sets)
        table = _alignment_table(config, rows, scores, ceiling_of)
        map_significance = best_layer_map_significance(scores, config["fdr_q"])
        for name, subject in subjects.items():   # after the ceilings, which the normalized-r maps need
            write_native_maps(partial, scores, name, subject.data.space)
    best = _write_tables(partial, table, partitions, map_significance, weighted)
    figures = _heatmaps(table, partial, roi_networks(config, table["roi"].unique()), config["fdr_q"])
    _analyses(config, partial)
    write_report(partial)
    log.info("wrote %d figures, the tables and %s", len(figures), out / "report.html")
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
    ``all`` fits each model under every instruction its store holds (the 13 video tasks for a video
    MLLM and the 5 audio tasks for an audio MLLM in one sweep), the no-instruction control excepted.

    Returns
    -------
    prompts : dict name -> prompt text, every instruction fitted
    per_model : dict model -> list of instruction names
    """
    names = config["instructions"]
    extra = parse_list(config["instruction_files"])
    baselines = {m for m, s in stores.items() if s.instructions() == [NO_INSTRUCTION]}
    instructed = {m: s for m, s in stores.items() if m not in baselines}
    every = names == "all" or names == ["all"]
    if every:
        held = {m: [i for i in s.instructions() if i != NO_INSTRUCTION] for m, s in instructed.items()}
        names = sorted(set().union(*held.values())) if instructed else [NO_INSTRUCTION]
    # stores that are all baselines (no instruction) ask for no prompt
    prompts = resolve(names, extra_files=extra) if instructed or not baselines else {}
    per_model = {m: ([NO_INSTRUCTION] if m in baselines else [i for i in prompts if not every or i in held[m]])
                 for m in stores}
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


def _prepare_subjects(config, feature_rows, work):
    """Every subject's prepared responses, and subject -> sentence for those left out: a subject with nothing to
    fit (every target NaN or constant, such as time courses of zeros) is left out with its sentence logged, and
    stops the run when it is the only one."""
    subjects, excluded = {}, {}
    for name in _subjects(config):
        try:
            subjects[name] = prepare_subject(config, name, feature_rows, work)
        except EmptySubjectError as err:
            excluded[name] = err
            log.warning("excluded: %s", err)
    if not subjects:
        raise next(iter(excluded.values()))
    if excluded:
        log.warning("%d of %d subjects excluded (nothing to fit); the analysis goes on with %d", len(excluded),
                    len(excluded) + len(subjects), len(subjects))
    return subjects, {name: str(err) for name, err in excluded.items()}


def _assemble_subject(config, name, subject, specs, work, scores, stores, instructions, layers, n_layers, partial):
    """One subject's part of scores.h5 from its finished fits: layer fits, best-layer/instruction maps,
    repeat ceilings, joint fits and their variance partitions.

    Returns
    -------
    rows : list of alignment rows
    partitions : list of variance-partition rows
    weighted : list of layer_weights.csv rows
    test_set : dict test run -> responses (n_TR, n_targets), for the cross-subject ceiling
    """
    data, rois = subject.data, subject.rois
    if (~data.valid).any():
        log.warning("%s: %d of %d targets are NaN or constant in some training run; excluded and scored NaN",
                    name, int((~data.valid).sum()), data.n_targets)
    if data.untestable.any():
        log.warning("%s: %d targets are NaN or constant in a test run only (%s); fitted, their test scores are NaN",
                    name, int(data.untestable.sum()), ", ".join(data.run_names[i] for i in data.test))
    if subject.dropped:
        log.warning("%s: ROI(s) with no valid targets, skipped: %s", name, ", ".join(subject.dropped))
    _write_subject(scores, name, data, data.train, data.test, rois, config)
    n_permutations, exact = 0, False
    if config["n_permutations"]:
        # the permutations every fit used (drawn again in each fit from the same seed); the cap is logged here
        permutations = block_permutations([data.bold[i].shape[0] for i in data.test], config["permutation_block"],
                                          config["n_permutations"], config["seed"])
        n_permutations, exact = permutations.n_permutations, permutations.exact
    scores.attrs(name).update(n_permutations=n_permutations, permutations_exact=exact)
    rows = []
    for spec in specs:
        if spec["kind"] != "layer" or spec["band_only"]:
            continue
        band = spec["bands"][0]
        key = scores.copy_fit(work.fit_path(spec["fingerprint"]), spec["key"])
        full = {field: scores.read(key, field) for field in ("test_r", "test_r2", "cv_score")}
        roi_p = None
        if f"{key}/q_perm" in scores:
            full["q_perm"] = scores.read(key, "q_perm")
            roi_p = json.loads(scores.attrs(key)["roi_p"])
        rows += roi_rows(name, band["model"], band["instruction"], band["layer"], n_layers[band["model"]], full,
                         rois, roi_p, n_permutations, config["fdr_q"])
    _best_maps(config, scores, name, data, stores, instructions, layers, n_layers, rois, partial)
    _repeat_ceiling(config, scores, name, data, data.test)
    partitions = []
    band_only = {spec["key"]: work.fit_path(spec["fingerprint"]) for spec in specs if spec.get("band_only")}
    for spec in specs:
        if spec["kind"] == "joint":
            partitions += _assemble_joint(spec, work, scores, rois, band_only)
    weighted = []
    for spec in specs:
        if spec["kind"] == "layer_weights":
            weighted += _assemble_layer_weights(spec, work, scores, rois)
    log.info("%s: %d fits assembled", name, len(specs))
    return rows, partitions, weighted, _test_responses(data, data.test)


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


def _write_tables(out, table, partitions, map_significance, weighted=()):
    """alignment.csv, best_layers.csv and, when they have rows, the instruction, group, partition and layer
    weights tables."""
    table.to_csv(out / "alignment.csv", index=False)
    best = best_layer_table(table, map_significance)
    best.to_csv(out / "best_layers.csv", index=False)
    written = ["alignment.csv", "best_layers.csv"]
    for name, frame in (("best_instructions.csv", best_instruction_table(table)),
                        ("group_tests.csv", group_tests(table)),
                        ("variance_partition.csv", pd.DataFrame(partitions)),
                        ("layer_weights.csv", pd.DataFrame(list(weighted)))):
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


def _assemble_joint(spec, work, scores, rois, band_only):
    """A banded fit into scores.h5 and, for two bands, its variance partition against the single-band fits
    (the layer sweep's, or a band-only fit of the work folder)."""
    import h5py

    key = scores.copy_fit(work.fit_path(spec["fingerprint"]), spec["key"])
    subject, joint_name = spec["subject"], spec["key"].rsplit("/", 1)[1]
    bands = spec["bands"]
    log.info("%s: banded fit '%s' over %d bands", subject, joint_name, len(bands))
    if len(bands) != 2:
        return []
    single = []
    for band in bands:
        band_key = f"{subject}/{band['model']}/{band['instruction']}/layer_{band['layer']}"
        if band_key in scores:
            single.append(scores.read(band_key, "test_r2"))
        else:
            with h5py.File(band_only[band_key], "r") as handle:
                single.append(handle[f"{band_key}/test_r2"][()])
    partition = VariancePartition(scores.read(key, "test_r2"), *single)
    labels = [f"{b['model']}:{b['instruction']}:layer_{b['layer']}" for b in bands]
    for part, values in {"r2_a": partition.r2_a, "r2_b": partition.r2_b, **partition.parts()}.items():
        scores.write_array(f"{key}/partition", part, values.astype(np.float32))
    scores.attrs(f"{key}/partition").update(band_a=labels[0], band_b=labels[1])
    return roi_partition_rows(partition, rois, subject=subject, joint=joint_name, band_a=labels[0],
                              band_b=labels[1])


def _assemble_layer_weights(spec, work, scores, rois):
    """A layer-weights fit into scores.h5 beside the layer sweep it is compared with; its layer_weights.csv rows
    (``encoding.layer_weights.roi_rows``)."""
    from .layer_weights import roi_rows

    key = scores.copy_fit(work.fit_path(spec["fingerprint"]), spec["key"])
    sweep = key.rsplit("/", 1)[0]
    attrs = scores.attrs(key)
    bands = json.loads(attrs["band_layers"])
    log.info("%s: layer weights over %d bands of %s (%d samples)", spec["subject"], len(bands), sweep,
             attrs["n_samples"])
    fit = {name: scores.read(key, name) for name in ("weights", "preferred_depth", "test_r", "cv_score")}
    best = {name: scores.read(sweep, name) for name in ("best_layer", "best_layer_test_r", "best_layer_cv_score")}
    model, instruction = spec["bands"][0]["model"], spec["bands"][0]["instruction"]
    return roi_rows(spec["subject"], model, instruction, fit, best, rois, bands, np.asarray(attrs["band_depths"]),
                    int(attrs["n_layers"]))


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


def _heatmaps(table, out, networks=None, fdr_q=0.05):
    import matplotlib.pyplot as plt
    files = []
    for (subject, model, instruction), part in table.groupby(["subject", "model", "instruction"], sort=False):
        path = out / f"layer_roi_{subject}_{model}_{instruction}.png"
        fig = plot_layer_roi_heatmap(part, f"{subject} · {model} · {instruction}", path, networks=networks,
                                     fdr_q=fdr_q)
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
