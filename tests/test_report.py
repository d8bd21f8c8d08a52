"""report.html gathers every table and figure of an output folder, with the config and versions."""
import json
import re
from pathlib import Path

import h5py
import pandas as pd
import pytest

from encoding.flatmap.__main__ import main as flatmap_main
from encoding.outputs._report_html import STYLE, _inline, _table
from encoding.outputs._report_text import SECTION_TEXT, ceiling_lines
from encoding.outputs.report import write_report
from toy_output import toy_output


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_output(tmp_path_factory.getbasetemp() / "toy-study")


def _html(folder):
    return (Path(folder) / "report.html").read_text()


def test_every_figure_of_the_folder_is_shown_and_exists(toy):
    page = _html(toy)
    shown = re.findall(r'<img src="([^"]+)"', page)
    on_disk = sorted(str(p.relative_to(toy)) for p in toy.glob("*.png"))
    assert sorted(shown) == on_disk                                     # heatmaps and hierarchy plots
    # 3 subjects x 2 instructions of heatmaps, as many hierarchy plots, and 2 group hierarchy plots
    assert len(shown) == 3 * 2 + 3 * 2 + 2


def test_every_table_is_in_the_report_row_for_row(toy):
    page = _html(toy)
    for name in ("best_layers.csv", "hierarchy_tests.csv", "best_instructions.csv", "variance_partition.csv",
                 "group_tests.csv"):
        table = pd.read_csv(toy / name)
        caption = page.index(f'<div class="caption">{name}</div>')
        body = page[caption:page.index("</table>", caption)]
        assert body.count("<tr>") == len(table) + 1, name               # header + one row per CSV row
    assert "nan" not in re.sub(r"<pre>.*?</pre>", "", page, flags=re.S).lower().replace("nanmean", "")


def test_report_says_what_was_asked_and_what_it_ran_with(toy):
    page = _html(toy)
    assert "Caption the video in a short sentence." in page
    assert "What are the main events captured in the video?" in page
    versions = json.loads((toy / "versions.json").read_text())
    assert f"<td>himalaya</td><td>{versions['himalaya']}</td>" in page
    assert "n_permutations: 100" in page                                 # the config, verbatim
    significance = re.search(r"<li>significance: [^<]*</li>", page).group(0)
    assert "100 block permutations" in significance and "3 subjects" not in significance   # from the config


def test_markdown_report_points_to_the_html_one(toy):
    text = (toy / "report.md").read_text()
    assert "report.html" in text and "| best_layer |" in text              # the same tables, as Markdown
    assert text.count("![") == len(re.findall(r"<img ", _html(toy)))


def test_flatmap_command_adds_its_maps_to_the_report(toy, tmp_path):
    copy = tmp_path / "out"
    copy.mkdir()
    for path in toy.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    assert flatmap_main([str(copy), "--map", "best_layer", "--subject", "sub-01", "--instruction", "caption",
                         "--no-outlines", "--quiet"]) == 0
    assert 'src="flatmaps/best_layer_sub-01_toy_caption.png"' in _html(copy)
    write_report(copy)                                                    # idempotent
    assert _html(copy).count("flatmaps/best_layer_sub-01_toy_caption.png") == 4   # href, src, alt, caption: once


def test_report_html_shows_emphasis_as_html_and_no_markdown_asterisks(toy):
    outside_config = re.sub(r"<pre>.*?</pre>", "", _html(toy), flags=re.S)
    assert "*" not in outside_config
    assert "<em>best_layer</em>: Targets at their CV-best layer" in outside_config     # the families' names
    assert "<strong>Embedded demo.</strong>" in _inline(SECTION_TEXT["demo"])


def test_report_names_the_ceiling_each_subject_used_as_scores_h5_recorded_it(toy):
    with h5py.File(toy / "scores.h5", "r") as scores:
        used = {s: scores[f"{s}/noise_ceiling/ceiling"].attrs["method"] for s in ("sub-01", "sub-02", "sub-03")}
        repeated = json.loads(scores["sub-01/noise_ceiling/explainable_variance"].attrs["stimuli"])
        pooled = json.loads(scores["noise_ceiling/cross_subject"].attrs["subjects"])
    # method auto: sub-01 watched the test run twice, the others did not
    assert used == {"sub-01": "repeat", "sub-02": "cross_subject", "sub-03": "cross_subject"}
    page = _html(toy)
    methods = page.split('id="data-and-methods"')[1].split("<h2")[0]
    assert (f"noise ceiling of sub-01: repeat, from {', '.join(repeated)}: the square root of the explainable "
            f"variance") in methods
    assert (f"noise ceiling of sub-02, sub-03: cross-subject over {len(pooled)} subjects, extrapolated to infinitely "
            f"many (spearman_brown) with 10 bootstraps") in methods       # the toy config's n_bootstrap
    assert methods.count("noise ceiling of") == 2


def test_ceiling_lines_follow_the_method_used_not_the_config():
    config = {"noise_ceiling": {"method": "auto", "extrapolation": "spearman_brown", "n_bootstrap": 100},
              "ceiling_threshold": 0.05}
    repeat = {"method": "repeat", "stimuli": ["run-5"]}
    cross = {"method": "cross_subject", "extrapolation": "exponential", "n_subjects": 4}
    lines = ceiling_lines(config, {"sub-01": repeat, "sub-02": repeat, "sub-03": cross, "sub-04": None})
    assert lines == [
        "noise ceiling of sub-01, sub-02: repeat, from run-5: the square root of the explainable variance, "
        "bias-corrected for the number of repeats",
        "noise ceiling of sub-03: cross-subject over 4 subjects, extrapolated to infinitely many (exponential) with "
        "100 bootstraps over subsets of subjects",
        "noise ceiling of sub-04: none (method auto: it needs a test run watched twice or more, or two or more "
        "subjects)",
        "normalized r where the ceiling exceeds 0.05 (`ceiling_threshold`; at or below it no ratio is computed)"]
    assert ceiling_lines(config, {"sub-01": None}) == [
        "noise ceiling of sub-01: none (method auto: it needs a test run watched twice or more, or two or more "
        "subjects)"]


def test_wide_tables_scroll_sideways_and_their_headers_may_wrap():
    frame = pd.DataFrame([range(12)], columns=[f"column_name_{i}" for i in range(12)])
    table = _table("alignment.csv", frame)
    assert '<div class="table-wrap"><table>' in table and "12 columns: scroll sideways" in table
    assert "<th>column_<wbr>name_<wbr>0</th>" in table
    wrap = re.search(r"\.table-wrap \{([^}]*)\}", STYLE).group(1)
    assert "overflow: auto" in wrap and "max-width: 100%" in wrap
    assert "scroll sideways" not in _table("narrow", frame.iloc[:, :3])
