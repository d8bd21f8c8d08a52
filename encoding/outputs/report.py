"""``report.html`` and ``report.md``: one page tying an output folder's tables and figures together.

Both are built from the files in the folder alone (config.yaml, versions.json, scores.h5 and the
CSV/PNG outputs), so ``python -m encoding.hierarchy`` and ``python -m encoding.flatmap`` can
refresh them after adding files. The HTML page holds everything, with the config and versions;
the Markdown page holds the same sections with its tables and links to the figures.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import pandas as pd
import yaml

from ._report_html import render_html
from ._report_text import SECTION_TEXT, data_lines

FLATMAP_KINDS = ("noise_ceiling", "normalized_r", "r", "significant", "best_layer", "best_instruction",
                 "unique_variance", "shared_variance")


@dataclass
class Section:
    """One part of the report: prose, tables (caption, DataFrame) and image file names."""

    title: str
    text: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    images: list = field(default_factory=list)


def _csv(folder, name, columns=None):
    path = folder / name
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    return frame[[c for c in columns if c in frame]] if columns else frame


def _instructions(folder):
    """Prompts, each subject's space, each subject's permutations (count used, whether exact) and ceiling, and
    the subjects left out (subject -> the sentence that says why)."""
    try:
        with h5py.File(folder / "scores.h5", "r") as scores:
            subjects = [s for s in scores if s != "noise_ceiling"]
            excluded = json.loads(scores.attrs.get("excluded_subjects", "{}"))
            return (json.loads(scores.attrs.get("instructions", "{}")),
                    {s: scores[s].attrs.get("space", "") for s in subjects},
                    {s: (int(scores[s].attrs["n_permutations"]), bool(scores[s].attrs["permutations_exact"]))
                     for s in subjects if "n_permutations" in scores[s].attrs},
                    {s: _ceiling_used(scores, s) for s in subjects}, excluded)
    except OSError:
        return {}, {}, {}, {}, {}


def _ceiling_used(scores, subject):
    """The ceiling a subject's normalized r used, as the analysis recorded it (None: no ceiling).

    Returns
    -------
    dict with "method" (repeat, split_half or cross_subject) and, by method, "stimuli" (the repeated test
    runs) or "extrapolation" and "n_subjects"
    """
    key = f"{subject}/noise_ceiling"
    if f"{key}/ceiling" not in scores:
        return None
    used = {"method": str(scores[f"{key}/ceiling"].attrs.get("method", "unknown"))}
    if used["method"] in ("repeat", "split_half") and f"{key}/explainable_variance" in scores:
        used["stimuli"] = json.loads(scores[f"{key}/explainable_variance"].attrs.get("stimuli", "[]"))
    if used["method"] == "cross_subject" and "noise_ceiling/cross_subject" in scores:
        attrs = scores["noise_ceiling/cross_subject"].attrs
        used.update(extrapolation=str(attrs.get("method", "")),
                    n_subjects=len(json.loads(attrs.get("subjects", "[]"))))
    return used


def _images(folder, pattern):
    return sorted(str(p.relative_to(folder)) for p in folder.glob(pattern))


def build_sections(folder):
    """The report's sections from what the folder holds.

    Returns
    -------
    title : str, demo : bool, sections : list of Section
    """
    folder = Path(folder)
    config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    prompts, spaces, permutations, ceilings, excluded = _instructions(folder)
    sections = [Section("What was asked", [f"`{name}`: \"{prompt}\"" if prompt or name != "none" else
                                           "`none`: no instruction (features of the stimulus alone: baselines and "
                                           "stores built from a transcript)" for name, prompt in prompts.items()]),
                Section("Data and methods", data_lines(config, spaces, permutations, ceilings)
                        + [f"excluded: {sentence}" for sentence in excluded.values()])]
    if config.get("n_permutations"):
        sections.append(Section("Multiple comparisons", SECTION_TEXT["families"]))
    best = _csv(folder, "best_layers.csv")
    sections.append(Section("Best layer per ROI", SECTION_TEXT["best"], [("best_layers.csv", best)]))
    sections.append(Section("Layer × ROI maps", SECTION_TEXT["heatmaps"], images=_images(folder, "layer_roi_*.png")))
    sections.append(_ceiling_section(folder, best))
    sections.append(Section("Layer hierarchy", SECTION_TEXT["hierarchy"],
                            [("hierarchy_tests.csv", _csv(folder, "hierarchy_tests.csv")),
                             ("hierarchy.csv", _csv(folder, "hierarchy.csv", HIERARCHY_COLUMNS))],
                            _images(folder, "hierarchy_*.png")))
    sections.append(_optional(folder, "Best instruction per ROI", "instruction", "best_instructions.csv",
                              "flatmaps/best_instruction_*.png", "it needs an analysis over two or more instructions"))
    sections.append(_optional(folder, "Variance partitioning", "partition", "variance_partition.csv",
                              "flatmaps/*_variance_*.png", "it needs a two-band fit in the config's 'joint'"))
    sections.append(_optional(folder, "Layer weights", "layer_weights", "layer_weights.csv", None,
                              "it needs `layer_weights: true` in the config or --layer-weights"))
    sections.append(_optional(folder, "Across-subject tests", "group", "group_tests.csv", None,
                              "it needs two or more subjects"))
    sections.append(Section("Flatmaps", SECTION_TEXT["flatmaps"],
                            images=_images(folder, "flatmap_*.png") + [
                                image for kind in ("best_layer", "significant", "r")
                                for image in _images(folder, f"flatmaps/{kind}_*.png")]))
    sections.append(Section("Files", SECTION_TEXT["files"]))
    sections = [s for s in sections if s.text or any(t is not None and len(t) for _, t in s.tables) or s.images]
    return f"Encoding report: {config.get('name', folder.name)}", config.get("demo") is not None, sections


HIERARCHY_COLUMNS = ["subject", "model", "instruction", "roi", "level", "n_targets", "n_subjects",
                     "preferred_depth_argmax", "argmax_ci_low", "argmax_ci_high", "preferred_depth_weighted",
                     "weighted_ci_low", "weighted_ci_high", "preferred_depth_layer_weights", "layer_weights_ci_low",
                     "layer_weights_ci_high", "in_rank_test"]


def _optional(folder, title, text_key, table_name, image_pattern, needs):
    """A section whose table exists only for some analyses; otherwise one line saying what it needs."""
    table = _csv(folder, table_name)
    if table is None or not len(table):
        return Section(title, [f"Not computed: {needs}."])
    return Section(title, SECTION_TEXT[text_key], [(table_name, table)],
                   _images(folder, image_pattern) if image_pattern else [])


def _ceiling_section(folder, best):
    text = list(SECTION_TEXT["ceiling"])
    tables = []
    if best is not None and "normalized_mean_test_r" in best:
        alignment = _csv(folder, "alignment.csv")
        order = {roi: i for i, roi in enumerate(dict.fromkeys(alignment["roi"]))}
        at_best = alignment[alignment["best_layer_by_cv"]]
        at_best = at_best.assign(_order=at_best["roi"].map(order)).sort_values(
            ["subject", "model", "instruction", "_order"])
        tables.append(("noise ceiling and normalized r at the CV-best layer",
                       at_best[["subject", "model", "instruction", "roi", "layer", "mean_test_r", "noise_ceiling",
                                "n_targets_ceiling", "normalized_mean_test_r", "ceiling_method"]]))
    else:
        text.append("No noise ceiling: it needs a test run watched twice or more, or two or more subjects.")
    return Section("Noise ceilings and normalized alignment", text, tables,
                   _images(folder, "flatmaps/noise_ceiling_*.png") + _images(folder, "flatmaps/normalized_r_*.png"))


def write_report(folder):
    """Write ``report.html`` and ``report.md`` into an output folder; return the HTML path."""
    folder = Path(folder)
    title, demo, sections = build_sections(folder)
    config_text = (folder / "config.yaml").read_text()
    versions = json.loads((folder / "versions.json").read_text()) if (folder / "versions.json").is_file() else {}
    (folder / "report.html").write_text(render_html(title, demo, sections, config_text, versions))
    (folder / "report.md").write_text(_render_markdown(title, demo, sections, versions))
    return folder / "report.html"


def _markdown_table(frame, digits=3):
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _render_markdown(title, demo, sections, versions):
    lines = [f"# {title}", ""]
    if demo:
        lines += [f"> {SECTION_TEXT['demo']}", ""]
    lines += ["The full report with every figure, the config and the versions is `report.html`.", ""]
    for section in sections:
        lines += [f"## {section.title}", ""] + [f"- {t}" if section.title in ("What was asked", "Data and methods")
                                                 else t for t in section.text] + [""]
        for caption, frame in section.tables:
            if frame is not None and len(frame):
                lines += [f"`{caption}`:", "", _markdown_table(frame), ""]
        lines += [f"![{image}]({image})" for image in section.images] + [""]
    lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), ""]
    return "\n".join(lines)
