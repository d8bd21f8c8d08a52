"""report.html gathers every table and figure of an output folder, with the config and versions."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from encoding.demo.toy_study import toy_output
from encoding.flatmap.__main__ import main as flatmap_main
from encoding.outputs.report import write_report


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
    assert "100 block permutations" in page and "3 subjects" not in page   # methods line from the config


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
