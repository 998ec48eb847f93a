"""Benchmarks end to end on the tiny config: bench -> report -> a real headless Chromium; resume; config errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from unlearnkit.cli import main
from unlearnkit.reporting.records import read_records
from unlearnkit.reporting.report import summarize
from unlearnkit.running.benchconfig import BenchConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "benchmarks" / "tiny.toml"
ARTIFACTS = ROOT / "test-artifacts"
TIMING = ("seconds", "speedup", "cached_model")  # wall-clock facts differ between runs; nothing else may


def _comparable(records):
    out = {}
    for r in records:
        row = {k: v for k, v in r.items() if k not in TIMING}
        if "diagnostics" in row:  # e.g. filtration's solve_seconds
            row["diagnostics"] = {k: v for k, v in row["diagnostics"].items() if "seconds" not in k}
        out[(r["cell"], r["seed"])] = row
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    assert main(["bench", str(TINY), "--out", str(out), "--report", "--no-progress"]) == 0
    return out


def test_tiny_bench_records_every_row(tiny_run):
    records = read_records(tiny_run)
    # 2 seeds x (2 scenarios x (original + retrain + retrain_other) + 3 class methods + 2 random methods);
    # filtration skipped on random
    assert len(records) == 22 and all(r["status"] == "ok" for r in records)
    methods = {(r["scenario"], r["method"]) for r in records}
    assert ("random", "filtration") not in methods and ("class", "filtration") in methods
    by = {(r["scenario"], r["method"], r["seed"]): r for r in records}
    for scen in ("class", "random"):
        ref = by[(scen, "retrain", 0)]
        assert ref["avg_gap"] == 0.0
        orig = by[(scen, "original", 0)]
        assert orig["original_facts"]["train_accuracy"] > 0.99
    # 003's rates, loss-threshold oracle: doing nothing forgets nothing; retraining and filtration forget the class
    for key in [("class", "original", 0), ("random", "original", 0)]:
        f = by[key]["forgetting"]
        assert f["fr"] == 0.0 and f["cfr"] == 0.0
        assert f["BT"] + f["BF"] == f["n_forget"] == by[key]["original_facts"]["n_forget"]
    assert by[("class", "retrain", 0)]["forgetting"]["fr"] == 1.0
    assert by[("class", "filtration", 0)]["forgetting"]["fr"] == 1.0  # measured: BT 34, BF 4, AF 38
    assert by[("class", "finetune", 0)]["forgetting"]["fr"] < 0.5
    # filtration forgets the class: forget accuracy 0 (the retrained model's too), class gap small
    assert by[("class", "filtration", 0)]["metrics"]["forget_accuracy"] == 0.0
    assert by[("class", "filtration", 0)]["avg_gap"] < 5.0 < by[("class", "original", 0)]["avg_gap"]
    meta = json.loads((tiny_run / "run.json").read_text())
    assert meta["config"]["skipped"] == [
        {"scenario": "random", "method": "filtration", "reason": "supports classes requests, not samples"}
    ]


def test_markdown_report_has_original_rows_and_skips(tiny_run):
    cells = json.loads((tiny_run / "summary.json").read_text())["cells"]
    assert len(cells) == 11 and all(c["metrics"]["test_accuracy"]["ci"] is not None for c in cells)
    md = (tiny_run / "report.md").read_text()
    assert md.count("| original (no unlearning) |") == 2
    assert "filtration skipped: supports classes requests, not samples" in md
    assert "unlearnkit bench" in md and "Config hash" in md
    assert "A negative CFR means" in md  # the sign of CFR is explained where it is shown


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("Debian chromium / chromium-driver not installed (make setup installs them when apt is usable)")
    options = Options()
    options.binary_location = binary
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1300,1800",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_html_report_in_headless_chromium(tiny_run):
    summary = {s["cell"]: s for s in summarize(read_records(tiny_run))}
    browser = _chromium()
    try:
        browser.get((tiny_run / "report.html").as_uri())
        assert browser.title == "tiny — unlearnkit benchmark"
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        sizes = browser.execute_script(
            "return Array.from(document.querySelectorAll('svg, img')).map(e => {"
            "const r = e.getBoundingClientRect(); return [e.tagName, r.width, r.height,"
            " e.tagName === 'IMG' ? e.naturalWidth"
            " : Array.from(e.querySelectorAll('[id^=series-]')).map(g => g.id)]; })"
        )
        assert len(sizes) == 6  # a scatter, a bar chart and the MIA ROC curves per scenario
        assert all(w > 100 and h > 100 and len(marks) > 0 for _, w, h, marks in sizes)
        rows = browser.execute_script(
            "return Array.from(document.querySelectorAll('h2 + .scroll > table')).map(t => "
            "[t.parentElement.previousElementSibling.textContent,"
            " Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))]);"
        )
        # the wide table scrolls inside its box instead of wrapping a token per line
        wraps = browser.execute_script(
            "return Array.from(document.querySelectorAll('.scroll td')).filter(td => td.getClientRects().length > 0"
            " && td.getBoundingClientRect().height > 2.2 * parseFloat(getComputedStyle(td).lineHeight || 16)).length;"
        )
        assert wraps == 0
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "tiny_report.png"))
    finally:
        browser.quit()
    assert [title for title, _ in rows] == ["digits / mlp / class", "digits / mlp / random"]
    # every chart names the methods of its records: scatter = methods (not retrain/original), ROC and bars = all
    for (_, _, _, scatter), (_, _, _, bars), (_, _, _, roc), scenario in zip(
        sizes[0::3], sizes[1::3], sizes[2::3], ("class", "random"), strict=True
    ):
        methods = {v["method"] for v in summary.values() if v["scenario"] == scenario}
        assert set(scatter) == {f"series-{m}" for m in methods - {"retrain", "retrain_other", "original"}}
        assert set(roc) == {f"series-{m}" for m in methods}
        assert {b.split("-class-")[0] for b in bars} == {f"series-{m}" for m in methods}
    for title, table in rows:
        scenario = title.split(" / ")[2]
        for cells in table:
            method = {"original (no unlearning)": "original", "retrain (other seed)": "retrain_other"}.get(cells[0],
                                                                                                     cells[0])
            s = next(v for v in summary.values() if v["scenario"] == scenario and v["method"] == method)
            gap = s["avg_gap"]
            assert cells[1].startswith(f"{gap['mean']:.2f} ± {gap['std']:.2f}")
            assert cells[2] == f"{100 * s['metrics']['forget_accuracy']['mean']:.1f} ± " \
                f"{100 * s['metrics']['forget_accuracy']['std']:.1f}"  # fmt: skip
            assert cells[-1] == str(len(s["seeds"]))
            sec = s["seconds"]  # significant digits: a 5 ms method does not print as 0.00 ± 0.00
            assert cells[9] == f"{sec['mean']:.3g} ± {sec['std']:.2g}" and cells[9] != "0.00 ± 0.00"
    assert (ARTIFACTS / "tiny_report.png").stat().st_size > 10_000


def test_resume_after_a_kill_equals_an_uninterrupted_run(tiny_run, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "unlearnkit.cli", "bench", str(TINY), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    records = out / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once some, but not all, rows are written
        if records.exists() and len(records.read_text().splitlines()) >= 6:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(read_records(out))
    assert 6 <= written < 22, written
    # without --resume the folder is refused: one line, exit 2, nothing written
    before = records.read_text()
    assert main(["bench", str(TINY), "--out", str(out), "--no-progress"]) == 2
    assert records.read_text() == before
    first = json.loads((out / "run.json").read_text())
    assert "resumes" not in first
    # a fresh checkout: the records survive, the model cache does not (the run's cache lives in its folder)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("records.jsonl", "run.json"):
        shutil.copy(out / name, fresh / name)
    assert main(["bench", str(TINY), "--out", str(fresh), "--resume", "--no-progress"]) == 0
    assert _comparable(read_records(fresh)) == _comparable(read_records(tiny_run))
    assert main(["bench", str(TINY), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert _comparable(read_records(out)) == _comparable(read_records(tiny_run))
    # the resume keeps the run's first start and machine and appends its own, once rows ran
    meta = json.loads((out / "run.json").read_text())
    assert meta["started"] == first["started"] and meta["environment"] == first["environment"]
    assert [set(r) for r in meta["resumes"]] == [{"started", "environment"}]
    # a resume with nothing left to run leaves run.json byte for byte as it was
    text = (out / "run.json").read_text()
    assert main(["bench", str(TINY), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "run.json").read_text() == text


def test_a_failing_cell_is_recorded_and_the_rest_continue(tmp_path):
    cfg = tmp_path / "fail.toml"
    text = TINY.read_text().replace("filtration = { samples_per_class = 20 }",
                                    "filtration = { samples_per_class = 20, max_condition = 1.000001 }")  # fmt: skip
    cfg.write_text(text.replace("seeds = [0, 1]", "seeds = [0]"))
    assert main(["bench", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 3  # a row failed
    records = read_records(tmp_path / "run")
    failed = [r for r in records if r["status"] != "ok"]
    assert [r["method"] for r in failed] == ["filtration"]
    assert "condition number" in failed[0]["error"]
    assert len(records) == 11


BASE = TINY.read_text()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (("neggrad_plus = {}", "neggrad_pluss = {}"), "key 'methods.neggrad_pluss': unknown method 'neggrad_pluss'"),
        (('datasets = ["digits"]', 'datasets = ["digitz"]'), "key 'data.datasets[0]': unknown dataset 'digitz'"),
        (("finetune = { epochs = 3 }", 'finetune = { epochs = "three" }'), "key 'methods.finetune': The 'epochs'"),
        (("seeds = [0, 1]", "seeds = 0"), "key 'seeds': must be a list of ints >= 0, got int 0"),
        (("lr = 0.05", 'lr = "fast"'), "key 'train'"),
        (("seeds = [0, 1]\n", ""), "key 'seeds': missing required key"),
        (
            ('[[scenarios]]\nname = "class"\noptions = { forget_classes = [3] }\n', ""),
            "key 'methods.filtration': no scenario here can run it (supports classes requests, not samples)",
        ),
        (("[executor]", "[executr]"), "key 'executr': unknown key"),
        # checked against the data before any cell runs (they used to fail cell by cell)
        (
            ("forget_classes = [3]", "forget_classes = [42]"),
            "key 'scenarios[0].options': on digits: The 'forget_classes'",
        ),
        (("fraction = 0.1", "fraction = 1.5"), "key 'scenarios[1].options': The 'forget_fraction' parameter"),
        (("train_size = 400", "train_size = 100000"), "key 'data': dataset 'digits': The 'train_size' parameter"),
        (("lr = 0.05", "lr = inf"), "key 'train': The 'lr' parameter of TrainConfig must be a float in (0, inf)"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path, edit, match, capsys):
    old, new = edit
    assert old in BASE
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace(old, new))
    with pytest.raises(BenchConfigError, match=None) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and match in message and "fix:" in message
    assert main(["bench", str(path), "--out", str(tmp_path / "out")]) == 2  # exit 2, one line, no run folder
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_yaml_files_and_bad_suffix(tmp_path):
    yaml = pytest.importorskip("yaml")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    data = tomllib.loads(BASE)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    assert load_config(tmp_path / "tiny.yaml").content_hash() == load_config(TINY).content_hash()
    (tmp_path / "tiny.json").write_text("{}")
    with pytest.raises(BenchConfigError, match="must end in .toml, .yaml or .yml"):
        load_config(tmp_path / "tiny.json")


def test_report_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "must be a folder written by unlearnkit bench" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mnist_random10", "mnist_class", "mnist_memorized", "fashion_random10",
                                  "fashion_class"])
def test_shipped_configs_cover_every_registered_method(name):
    from unlearnkit.methods import METHODS

    cfg = load_config(ROOT / "benchmarks" / f"{name}.toml")
    assert {m.name for m in cfg.methods} == set(METHODS.names()) - {"retrain"}
    assert len(cfg.seeds) == 5
    ran = {m.name for _, m in cfg.pairs()} | {s.method for s in cfg.skipped}
    assert ran == set(METHODS.names()) - {"retrain"}  # each one either runs or is skipped with a reason


def test_a_top_level_key_written_after_a_table_is_explained(tmp_path):
    text = BASE.replace(
        "[methods]\nfinetune = { epochs = 3 }\nneggrad_plus = {}\nfiltration = { samples_per_class = 20 }\n", ""
    )
    path = tmp_path / "late.toml"
    path.write_text(text.replace("options = { fraction = 0.1 }", 'options = { fraction = 0.1 }\nmethods = "all"'))
    with pytest.raises(BenchConfigError, match=r"key 'methods': missing at the top level \(found inside 'scenarios'\)"):
        load_config(path)


def test_pareto_front_and_bootstrap_interval():
    from unlearnkit.reporting.report import bootstrap_ci, pareto_front

    # (seconds, gap): the second is dominated by the first; the third is slower but closer; the last ties nothing
    assert pareto_front([(1.0, 5.0), (2.0, 6.0), (10.0, 1.0), (0.5, 9.0)]) == [0, 2, 3]
    assert bootstrap_ci([1.0]) is None
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert 1.0 <= lo < 3.0 < hi <= 5.0
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    # against a hand-written percentile bootstrap with the same draws (numpy reference)
    values = np.array([0.3, 1.7, 2.2, 0.9, 4.1, 2.5])
    draws = np.random.default_rng(7).integers(0, values.size, size=(500, values.size))
    ref = np.quantile(values[draws].mean(1), [0.025, 0.975])
    assert bootstrap_ci(list(values), n_boot=500, seed=7) == pytest.approx(tuple(ref), abs=1e-12)


def test_charts_draw_the_numbers_of_the_records(tiny_run):
    """The matplotlib artists hold the summary's numbers: scatter points, bar heights, ROC curves."""
    from unlearnkit.evaluation.metrics import ROC_FPR_GRID
    from unlearnkit.reporting import plots
    from unlearnkit.reporting.report import chart_data

    cells = [c for c in summarize(read_records(tiny_run)) if c["scenario"] == "class"]
    data = chart_data(cells)
    by = {c["method"]: c for c in cells}
    fig = plots.gap_vs_time(data["gap_vs_time"], data["front"])
    points = {a.get_gid(): tuple(a.get_offsets()[0]) for a in fig.axes[0].collections if a.get_gid()}
    assert points == {plots.gid(m): pytest.approx((by[m]["seconds"]["mean"], by[m]["avg_gap"]["mean"]))
                      for m in by if m not in ("retrain", "retrain_other", "original")}  # fmt: skip
    fig.canvas.draw()  # tick labels are set when drawn
    ticks = [t for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert len(ticks) >= 2  # the log axis reads: more than one labelled tick
    fig = plots.per_class_bars(data["per_class"])
    heights = {p.get_gid(): p.get_height() for p in fig.axes[0].patches if p.get_gid()}
    for m, c in by.items():
        for k, v in enumerate(c["per_class_test_accuracy"]):
            assert heights[plots.gid(f"{m}-class-{k}")] == pytest.approx(100 * (v or 0.0))
    fig = plots.roc_curves(ROC_FPR_GRID, data["roc"])
    lines = {ln.get_gid(): list(ln.get_ydata()) for ln in fig.axes[0].lines if ln.get_gid()}
    assert lines == {plots.gid(m): pytest.approx(c["mia_loss_roc"]) for m, c in by.items()}
    fig.canvas.draw()
    assert all(t.get_text() for t in fig.axes[0].get_xticklabels())  # the ROC axes have tick labels


def test_ray_executor_gives_the_local_records(tiny_run, tmp_path):
    out = tmp_path / "ray"
    assert main(["bench", str(TINY), "--out", str(out), "--executor", "ray", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["executor"]["name"] == "ray"
    assert _comparable(read_records(out)) == _comparable(read_records(tiny_run))


def test_the_noise_floor_row_is_a_second_retraining_scored_like_a_method(tiny_run):
    records = read_records(tiny_run)
    by = {(r["scenario"], r["method"], r["seed"]): r for r in records}
    for scen in ("class", "random"):
        other, ref = by[(scen, "retrain_other", 0)], by[(scen, "retrain", 0)]
        assert other["avg_gap"] > 0.0 and ref["avg_gap"] == 0.0  # another seed is not the reference itself ...
        assert other["avg_gap"] < by[(scen, "original", 0)]["avg_gap"]  # ... but far closer than doing nothing
    md = (tiny_run / "report.md").read_text()
    assert md.count("| retrain (other seed) |") == 2 and "is the noise floor" in md


def test_scatter_panels_draw_each_group_at_its_coordinates():
    from unlearnkit.reporting import plots

    panels = {"before": {"a": ([0.0, 1.0], [2.0, 3.0]), "b": ([5.0], [6.0])}, "after": {"a": ([9.0], [8.0])}}
    fig = plots.scatter_panels(panels, colors_by_name={"a": "#ff0000", "b": "#0000ff"})
    drawn = {c.get_gid(): c.get_offsets().tolist() for ax in fig.axes for c in ax.collections}
    assert drawn == {plots.gid("before-a"): [[0.0, 2.0], [1.0, 3.0]], plots.gid("before-b"): [[5.0, 6.0]],
                     plots.gid("after-a"): [[9.0, 8.0]]}  # fmt: skip
    assert [ax.get_title() for ax in fig.axes] == ["before", "after"]


def test_image_grid_draws_every_map_in_its_cell_with_the_labels():
    import numpy as np

    from unlearnkit.reporting import plots

    maps = [[np.eye(3), np.full((3, 3), 2.0)], [np.zeros((3, 3)), np.arange(9.0).reshape(3, 3)]]
    fig = plots.image_grid(maps, row_labels=["a", "b"], col_labels=["input", "model"])
    cells = {ax.get_gid(): ax for ax in fig.axes}
    assert set(cells) == {plots.gid(f"cell-{r}-{c}") for r in range(2) for c in range(2)}
    np.testing.assert_array_equal(cells[plots.gid("cell-1-1")].images[0].get_array(), maps[1][1])
    assert cells[plots.gid("cell-0-1")].get_title() == "model" and cells[plots.gid("cell-1-0")].get_ylabel() == "b"


def test_curve_panels_legend_names_every_series_once_and_no_two_lines_look_alike():
    import warnings

    from unlearnkit.reporting import plots

    names = [f"m{i:02d}" for i in range(14)] + ["retrain"]
    panels = {"first": {n: ([1.0, 2.0], [0.0, 0.0]) for n in names}, "empty": {}}  # the last panel has no line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a legend finds no line
        fig = plots.curve_panels(panels, xlabel="x", ylabel="y")
    (legend,) = fig.legends  # many series: one legend beside the panels, not over them
    assert [t.get_text() for t in legend.get_texts()] == names
    looks = [(line.get_color(), line.get_linestyle()) for line in fig.axes[0].get_lines()]
    assert len(set(looks)) == len(names)
    few = plots.curve_panels({"a": {"x": ([1.0], [0.0])}, "b": {}}, xlabel="x", ylabel="y")
    assert not few.legends and [t.get_text() for t in few.axes[-1].get_legend().get_texts()] == ["x"]
