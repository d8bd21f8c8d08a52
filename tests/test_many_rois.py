"""A thousand parcels (issue 14): the layer x ROI heatmap stays readable (ordered by network, or paged) and
the terminal shows a summary per network that points to the CSV."""
import numpy as np
import pandas as pd
import pytest

from encoding.outputs.alignment import summarize_best_layers
from encoding.outputs.figures import DPI, MAX_LABELLED_ROIS, MAX_WIDTH_IN, plot_layer_roi_heatmap
from native_layouts import NETWORKS, schaefer_names

N_LAYERS = 5


def _tables(names, seed=0):
    """alignment rows of 1000 parcels x 5 layers: network k's parcels peak at layer k % 5; the best-layer rows."""
    rng = np.random.default_rng(seed)
    planted = {name: NETWORKS.index(name.split("_")[2]) % N_LAYERS for name in schaefer_names(len(names))}
    rows = []
    for original, name in zip(schaefer_names(len(names)), names):
        for layer in range(N_LAYERS):
            score = 0.3 - 0.05 * abs(layer - planted[original]) + 0.01 * rng.standard_normal()
            rows.append({"subject": "sub-01", "model": "m", "instruction": "caption", "layer": layer,
                         "depth": layer / (N_LAYERS - 1), "roi": name, "n_targets": 1, "mean_test_r": score,
                         "mean_cv_score": score, "best_layer_by_cv": layer == planted[original]})
    table = pd.DataFrame(rows)
    best = table[table["best_layer_by_cv"]].rename(columns={"layer": "best_layer"}).drop(columns="best_layer_by_cv")
    return table, best.reset_index(drop=True), planted


def test_a_thousand_parcels_are_drawn_by_network_in_one_figure_of_bounded_width(tmp_path):
    names = schaefer_names()
    table, _, planted = _tables(names)
    figure = plot_layer_roi_heatmap(table, "sub-01 · m · caption", tmp_path / "heatmap.png")
    width, height = figure.get_size_inches() * DPI
    assert width <= MAX_WIDTH_IN * DPI < 0.05 * (1.0 + 0.55 * 1000) * DPI       # was 66,120 px wide
    axis = figure.axes[0]
    labels = [tick.get_text() for tick in axis.get_xticklabels()]
    per_hemisphere = [sum(NETWORKS[i * 7 // 500] == n for i in range(500)) for n in NETWORKS]
    assert labels == [f"{n} ({2 * c})" for n, c in zip(NETWORKS, per_hemisphere)]
    image = axis.images[0].get_array()
    columns = sorted(names, key=lambda n: (NETWORKS.index(n.split("_")[2]), names.index(n)))
    expected = table.pivot(index="layer", columns="roi", values="mean_test_r")[columns].to_numpy()
    np.testing.assert_array_equal(np.asarray(image), expected)
    assert (tmp_path / "heatmap.png").is_file()
    marked = axis.collections[0].get_offsets()                   # one CV-best mark per parcel, at its layer
    assert len(marked) == 1000 and {int(y) for _, y in marked} == set(planted.values())


def test_without_networks_the_parcels_are_paged_beside_an_overview(tmp_path):
    names = [f"area{i:04d}" for i in range(150)]
    table, _, _ = _tables(names)
    figure = plot_layer_roi_heatmap(table, "paged", tmp_path / "heatmap.png")
    pages = sorted((tmp_path / "heatmap_pages").iterdir())
    assert [p.name for p in pages] == [f"heatmap_page-0{k}.png" for k in (1, 2, 3)]       # 60 + 60 + 30 ROIs
    assert figure.get_size_inches()[0] * DPI <= MAX_WIDTH_IN * DPI
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == names[::4]
    assert MAX_LABELLED_ROIS == 60


def test_the_terminal_summarises_a_thousand_parcels_per_network_and_names_the_csv():
    names = schaefer_names()
    _, best, planted = _tables(names)
    text = summarize_best_layers(best, csv_path="out/best_layers.csv")
    lines = text.splitlines()
    assert len(lines) < 20 and lines[-1] == "Every ROI: out/best_layers.csv"
    summary = pd.read_fwf(pd.io.common.StringIO("\n".join(lines[1:1 + 1 + len(NETWORKS)])))
    assert summary["network"].tolist() == list(NETWORKS)
    assert summary["median_best_layer"].tolist() == [NETWORKS.index(n) % N_LAYERS for n in NETWORKS]
    assert summary["n_rois"].sum() == 1000


def test_a_few_rois_are_listed_in_full():
    _, best, _ = _tables(schaefer_names(20))
    text = summarize_best_layers(best, csv_path="out/best_layers.csv")
    assert len(text.splitlines()) == 21 and "Every ROI" not in text


@pytest.mark.parametrize("networks", [None, {}])
def test_many_rois_without_networks_show_the_top_rows(networks):
    _, best, _ = _tables([f"area{i:04d}" for i in range(1000)])
    text = summarize_best_layers(best, networks=networks, max_rows=40)
    assert "the 20 of highest test r" in text and len(text.splitlines()) == 22
