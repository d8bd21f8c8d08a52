"""One analysis, end to end: stores and fMRI in, one output folder out.

The folder is written under a temporary name and renamed when complete, so a failed or killed
run never leaves something that looks finished, and an existing folder is replaced only with
``overwrite``.
"""
import json
import logging
from pathlib import Path

from features.errors import InputError

from ..config import fields, load_config
from ..demo.build import ensure_demo
from ..design import check_run_files
from ..encoders import SAVE_FIELDS, save_fitted_encoders
from ..outputs.alignment import best_layer_map_significance
from ..outputs.folder import atomic_folder, refuse_existing
from ..outputs.native_maps import write_native_maps
from ..outputs.report import write_report
from ..outputs.scores_file import ScoresFile
from ..ridge import barrier, launcher_world, limited_threads, main_process_first
from ..roi_sets import ROI_FIELDS, check_rois, roi_networks
from ..sweep import PLANNER_FIELDS, WorkFolder, plan_fits, report_changes, run_pending
from ..transcript_stores import TRANSCRIPT_FIELDS, ensure_transcript_stores
from ..versions import library_versions
from ._assemble import FIELDS as ASSEMBLY_FIELDS
from ._assemble import assemble_subject
from ._ceilings import FIELDS as CEILING_FIELDS
from ._ceilings import noise_ceilings
from ._dry_run import DRY_RUN_FIELDS, describe_dry_run
from ._figures import heatmaps, hierarchy_and_flatmaps
from ._inputs import (EXTRACTION_FIELDS, choose_instructions, choose_layers, extract_missing, n_stored_layers,
                      open_stores, output_folder, prepare_subjects, run_feature_rows, use_backend, work_folder)
from ._tables import alignment_table, jsonable, write_inputs, write_tables

log = logging.getLogger(__name__)


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
    out = output_folder(config["out"], config["name"])
    if not dry_run:
        refuse_existing(out, overwrite)
    if config["save_models"] and config["pca_components"]:
        raise InputError(f"{config['config_file']}: field 'save_models' cannot keep encoders of fits made on principal "
                         f"components (pca_components is {config['pca_components']}); set one or the other.")
    use_backend(config["backend"])
    rank, world = launcher_world()
    on_cuda = config["backend"] == "torch_cuda"
    if config["demo"] is not None:
        with main_process_first(on_cuda):
            ensure_demo(config["cache_dir"], config["demo"] or {})
    planner = fields(config, PLANNER_FIELDS)
    check_run_files(planner)                # every run's files, before any is read
    check_rois(planner)                     # from headers only: an atlas the space lacks stops here
    if config["stimuli"] and not dry_run:
        extract_missing(fields(config, EXTRACTION_FIELDS))
    if (config["transcript"]["words"] or config["transcript"]["tables"]) and not dry_run:
        with main_process_first(on_cuda):
            ensure_transcript_stores(fields(config, TRANSCRIPT_FIELDS))
    stores = open_stores(config["features_dir"], config["models"], config["config_file"])
    try:
        prompts, instructions = choose_instructions(config["instructions"], config["instruction_files"], stores)
        layers = {model: choose_layers(config["layers"], store, instructions[model], config["config_file"])
                  for model, store in stores.items()}
        n_layers = {model: n_stored_layers(store, instructions[model]) for model, store in stores.items()}
        feature_rows = run_feature_rows(stores, instructions)
        if dry_run:
            return None, describe_dry_run(fields(config, DRY_RUN_FIELDS), out, stores, prompts, instructions, layers,
                                          feature_rows)
        with main_process_first(on_cuda):   # rank 0 caches the responses, the others read them
            work = WorkFolder(work_folder(config["work_dir"], out))
            subjects, excluded = prepare_subjects(planner, feature_rows, work)
            specs = plan_fits(planner, subjects, stores, prompts, instructions, layers, work)
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
                save_fitted_encoders(fields(config, SAVE_FIELDS), Path(partial), subjects, specs, work, stores, prompts)
    finally:
        for store in stores.values():
            store.close()
    log.info("finished: %s (finished fits kept in %s)", out, work.path)
    return out, best


def _write_outputs(config, partial, out, stores, prompts, instructions, layers, n_layers, subjects, specs, work,
                   excluded=None):
    """Every table, figure and the report from the finished fits, into the temporary folder ``partial``
    (``out`` is the final folder, named in the log); returns best_layers. ``excluded``: subject -> the sentence
    that left it out, recorded in scores.h5 for the report."""
    write_inputs(partial, config)
    rows, partitions, weighted, test_sets = [], [], [], {}
    with ScoresFile(partial / "scores.h5", "w") as scores:
        scores.write_root(jsonable(config), library_versions(), prompts)
        scores.attrs().update(excluded_subjects=json.dumps(excluded or {}))
        assembly = fields(config, ASSEMBLY_FIELDS)
        for name, subject in subjects.items():
            subject_rows, subject_partitions, subject_weighted, test_sets[name] = assemble_subject(
                assembly, name, subject, [spec for spec in specs if spec["subject"] == name], work, scores, stores,
                instructions, layers, n_layers, partial)
            rows += subject_rows
            partitions += subject_partitions
            weighted += subject_weighted
        ceiling_of = noise_ceilings(fields(config, CEILING_FIELDS), scores, test_sets)
        table = alignment_table(rows, scores, ceiling_of, config["ceiling_threshold"])
        map_significance = best_layer_map_significance(scores, config["fdr_q"])
        for name, subject in subjects.items():   # after the ceilings, which the normalized-r maps need
            write_native_maps(partial, scores, name, subject.data.space)
    best = write_tables(partial, table, partitions, map_significance, weighted)
    figures = heatmaps(table, partial, roi_networks(fields(config, ROI_FIELDS), table["roi"].unique()), config["fdr_q"])
    hierarchy_and_flatmaps(partial, config["flatmap"])
    write_report(partial)
    log.info("wrote %d figures, the tables and %s", len(figures), out / "report.html")
    return best
