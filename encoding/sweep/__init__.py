"""A study-scale sweep: every fit a unit of work, persisted as soon as it is done, so the same command resumes;
fits run in this process or on Dask workers. See ``_work`` (the work folder), ``_units`` (a fit's spec,
fingerprint and computation), ``_plan`` (the plan and the dry run), ``_execute`` (where the fits run) and
``_cost`` (the calibrated cost model of the dry run).

The work folder's file helpers (content fingerprints, atomic writes, removing what killed processes left) are
public: the words study keeps its fits with them."""
from ._cost import CostModel, calibrate, load_cost_model
from ._execute import run_pending
from ._plan import (PLANNER_FIELDS, Subject, array_shapes, attach_hidden_sizes, describe_plan, fit_memory_gb,
                    header_shapes, plan_fits, prepare_subject, report_changes, subject_key, subject_shapes)
from ._units import compute_fit, make_spec, untested
from ._work import (WorkFolder, atomic_path, content_digest, publish, read_subject_cache,
                    remove_stale_temporaries)

__all__ = ["CostModel", "PLANNER_FIELDS", "Subject", "WorkFolder", "array_shapes", "atomic_path", "attach_hidden_sizes",
           "calibrate", "compute_fit", "content_digest", "describe_plan", "fit_memory_gb", "header_shapes",
           "load_cost_model", "make_spec", "plan_fits", "prepare_subject", "publish", "read_subject_cache",
           "remove_stale_temporaries", "report_changes", "run_pending", "subject_key", "subject_shapes", "untested"]
