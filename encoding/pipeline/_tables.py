"""The tables of the output folder (alignment, best layers and instructions, group tests, partitions, layer
weights) and the run's inputs beside them (config.yaml, versions.json)."""
import json
import logging

import numpy as np
import pandas as pd
import yaml

from ..config import DEFAULTS, as_given
from ..outputs.alignment import (add_fdr, add_normalized, best_instruction_table, best_layer_table, mark_best_layers,
                                to_frame)
from ..outputs.group_tests import group_tests
from ..versions import library_versions

log = logging.getLogger(__name__)


def alignment_table(rows, scores, ceiling_of, ceiling_threshold):
    """The alignment rows as a table, with FDR, the best layers marked and r normalized by the ceilings of the
    targets whose ceiling reaches ``ceiling_threshold``."""
    table = mark_best_layers(to_frame(rows, dict.fromkeys(r["roi"] for r in rows)))
    table = add_fdr(table)
    rois = {subject: scores.read_rois(subject) for subject in table["subject"].unique()}

    def test_r(subject, model, instruction, layer):
        return scores.read(f"{subject}/{model}/{instruction}/layer_{layer}", "test_r")
    return add_normalized(table, test_r, ceiling_of, rois, ceiling_threshold)


def write_tables(out, table, partitions, map_significance, weighted=()):
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


def write_inputs(out, config):
    with open(out / "config.yaml", "w") as handle:
        yaml.safe_dump(jsonable(config), handle, sort_keys=False)
    (out / "versions.json").write_text(json.dumps(library_versions(), indent=2))


def jsonable(config):
    """The config as config.yaml and scores.h5 record it: its paths and lists as the config gave them."""
    given = as_given(config)
    clean = {k: given[k] for k in list(DEFAULTS) + ["config_file"] if k in given}
    clean["alphas"] = [float(a) for a in np.asarray(config["alphas"])]
    return json.loads(json.dumps(clean, default=str))
