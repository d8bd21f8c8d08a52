"""The dry run: the plan's text (fits per subject and model, how many are done, memory and estimated time)."""
from ..sweep import (PLANNER_FIELDS, Subject, WorkFolder, array_shapes, attach_hidden_sizes, describe_plan,
                     fit_memory_gb, header_shapes, load_cost_model, plan_fits, read_subject_cache, subject_key,
                     subject_shapes)
from ._inputs import subject_names, work_folder

#: the config's fields the dry run reads (``encoding.config.fields``): the planner's, and where its estimates come from
DRY_RUN_FIELDS = (*PLANNER_FIELDS, "work_dir", "cache_dir")


def describe_dry_run(config, out, stores, prompts, instructions, layers, feature_rows):
    """The plan's text: nothing is written (the cost model's calibration is cached once per machine). ``config``:
    the run config's :data:`DRY_RUN_FIELDS`."""
    work = WorkFolder(work_folder(config["work_dir"], out), create=False)
    subjects, shapes = {}, {}
    for name in subject_names(config):
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
