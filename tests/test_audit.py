"""Audits: populations cached by content and resumable, the two protocols, the ceiling / floor rows, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from unlearnkit.core.training import TrainConfig
from unlearnkit.errors import ParameterError
from unlearnkit.running.audit import AuditConfig, audit_unit
from unlearnkit.running.benchconfig import BenchConfigError, load_config


def _spec(scenario: dict) -> dict:
    return {"dataset": "digits", "data_dir": None, "holdout_fraction": 0.2, "train_size": None,
            "model": {"name": "mlp", "options": {"widths": [32]}}, "scenario": scenario,
            "train": TrainConfig(epochs=8, lr=0.05, batch_size=64).to_dict(), "metrics": None}  # fmt: skip


RANDOM = {"name": "random", "options": {"fraction": 0.1}}
CLASS = {"name": "class", "options": {"forget_classes": [3]}}


def _logit_files(cache: Path) -> int:
    return len(list((cache / "audit" / "logits").glob("*.safetensors")))


def test_an_audit_scores_every_population_and_a_rerun_trains_nothing(tmp_path):
    audit = AuditConfig(models=4)
    out = audit_unit(_spec(RANDOM), audit, [("finetune", {"epochs": 2})], tmp_path)
    # 4 retrained + 4 ceiling + 4 originals + 4 unlearning runs
    assert out["computed"] == 16 and _logit_files(tmp_path) == 16
    row = out["rows"]["finetune"]
    assert 0.0 <= row["forget_score"] <= 1.0 and row["epsilon"]["mean"] >= 0.0
    assert set(row["klom"]) == {"forget", "retain", "test"}
    assert row["ulira"]["pairs"]["unlearned"] == 4 * out["forget_size"]
    assert row["rmia"]["target"] == "unlearned member 0" and 0.0 <= row["rmia"]["auc"] <= 1.0
    assert sum(row["epsilon_histogram"]) == out["forget_size"] == 108  # a random 10% of digits' training split
    assert out["resolution"] == 2.0  # ceil(ln 3): at N = 4 no ε above 2 can be told apart
    assert not out["notes"] and "ceiling" in out and "floor" in out
    again = audit_unit(_spec(RANDOM), audit, [("finetune", {"epochs": 2})], tmp_path)
    assert again["computed"] == 0 and again["rows"]["finetune"] == row  # the same numbers, from the cache
    more = audit_unit(_spec(RANDOM), AuditConfig(models=5), [("finetune", {"epochs": 2})], tmp_path)
    assert more["computed"] == 4  # one more member of each population


def test_a_method_that_ignores_its_seed_is_a_zero_width_population_under_the_challenge_protocol(tmp_path):
    # filtration trains nothing and draws nothing: from ONE original, N runs give N identical models
    out = audit_unit(_spec(CLASS), AuditConfig(models=4, protocol="challenge"), [("filtration", {})], tmp_path)
    row = out["rows"]["filtration"]
    assert row["identical_members"] and row["forget_score"] == 0.0 and row["epsilon"]["median"] == 50.0
    assert row["ulira"] is None
    assert any("zero-width population" in n and "challenge protocol" in n for n in out["notes"])
    per = audit_unit(_spec(CLASS), AuditConfig(models=4), [("filtration", {})], tmp_path)
    assert not per["rows"]["filtration"]["identical_members"]
    # ... but filtration masks the forgotten class's logit: every member's signal is the cap, a zero-width
    # population under per_original too, and the audit says so
    assert per["rows"]["filtration"]["zero_width_signal"] and per["rows"]["filtration"]["forget_score"] == 0.0
    assert any("same signal" in n and "by construction" in n for n in per["notes"])


def test_audit_settings_are_checked():
    with pytest.raises(ParameterError, match="'models' parameter of an audit must be an int >= 4; got 2"):
        AuditConfig(models=2)
    with pytest.raises(ParameterError, match="'protocol' parameter of an audit must be one of"):
        AuditConfig(protocol="one")


TOML = """
name = "tiny_audit"
seeds = [0]
[data]
datasets = ["digits"]
holdout_fraction = 0.2
[[models]]
name = "mlp"
kwargs = {{ widths = [32] }}
[train]
epochs = 8
lr = 0.05
batch_size = 64
[[scenarios]]
name = "random"
options = {{ fraction = 0.1 }}
[methods]
finetune = {{ epochs = 2 }}
neggrad = {{}}
[audit]
models = {models}
"""


def test_benchmark_files_take_an_audit_table(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text(TOML.format(models=6))
    assert load_config(path).audit == {"models": 6, "protocol": "per_original", "data_seed": 0, "retain_sample": 2000,
                                       "max_seconds": None}  # fmt: skip
    path.write_text(TOML.format(models=1))
    with pytest.raises(BenchConfigError, match="key 'audit': The 'models' parameter of an audit must be an int >= 4"):
        load_config(path)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unlearnkit", *args]


@pytest.mark.slow
def test_a_killed_audit_resumes_without_computing_a_member_twice(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text(TOML.format(models=8))
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli("audit", str(path), "--out", str(out)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and not ((out / "cache").exists() and _logit_files(out / "cache") >= 10):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _logit_files(out / "cache")
    assert 10 <= done < 40 and not (out / "audit.json").exists()  # killed mid-way: no result, some members cached
    res = subprocess.run(_cli("audit", str(path), "--out", str(out)), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert _logit_files(out / "cache") == 8 * 5  # retrained, ceiling, originals, finetune, neggrad
    record = json.loads((out / "audit.json").read_text())
    assert record["units"][0]["computed"] == 40 - done  # nothing computed twice
    assert "floor (original)" in res.stdout and "ceiling (retrained)" in res.stdout


def test_avg_gap_pairs_members_and_averages_the_four_metrics():
    from unlearnkit.running.audit import avg_gap

    u = np.array([[1.0, 1.0, 0.9, 0.6], [0.8, 1.0, 0.9, 0.5]])
    r = np.array([[0.9, 1.0, 0.9, 0.5], [0.9, 1.0, 0.9, 0.5]])
    # member 0: (0.1 + 0 + 0 + 0.1) / 4 = 0.05; member 1: (0.1 + 0 + 0 + 0) / 4 = 0.025 -> 3.75 points
    assert avg_gap(u, r) == pytest.approx(3.75)
    assert avg_gap(r, r) == 0.0


def test_audit_rows_carry_avg_gap_and_the_ulira_roc(tmp_path):
    out = audit_unit(_spec(RANDOM), AuditConfig(models=4), [("finetune", {"epochs": 2})], tmp_path)
    floor, row = out["floor"], out["rows"]["finetune"]
    assert floor["avg_gap"] > 0 and row["avg_gap"] >= 0 and out["retrain_seconds"] > 0
    roc = row["ulira"]["roc"]
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert all(a <= b for a, b in zip(roc["tpr"], roc["tpr"][1:], strict=False))  # a ROC curve never falls


@pytest.fixture(scope="module")
def bench_with_audit(tmp_path_factory):
    from unlearnkit.cli import main

    root = tmp_path_factory.mktemp("bench_audit")
    path = root / "a.toml"
    path.write_text(TOML.format(models=4))
    out = root / "run"
    assert main(["bench", str(path), "--out", str(out), "--executor", "local", "--report", "--no-progress"]) == 0
    return out


def _md_rows(md: str, title: str) -> list[list[str]]:
    block = md.split(f"## {title}\n", 1)[1].strip().split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]


def test_bench_runs_the_audit_table_and_the_report_shows_f_next_to_avg_gap(bench_with_audit):
    audit = json.loads((bench_with_audit / "audit.json").read_text())
    unit = audit["units"][0]
    assert unit["unit"] == "digits/mlp/random" and set(unit["rows"]) == {"finetune", "neggrad"}
    md = (bench_with_audit / "report.md").read_text()
    rows = _md_rows(md, "digits / mlp / random")
    assert rows[0][0] == "retrain" and rows[-1][0] == "original (no unlearning)"
    by = {r[0]: r for r in rows}
    assert by["retrain"][1] == f"{unit['ceiling']['forget_score']:.3f}"  # the ceiling on the retrain row
    assert by["original (no unlearning)"][1] == f"{unit['floor']['forget_score']:.3f}"  # the floor on the original's
    for m in ("finetune", "neggrad"):
        r = unit["rows"][m]
        assert by[m][1] == f"{r['forget_score']:.3f}" and by[m][2] == f"{r['final_score']:.3f}"
    assert rows[1][0] == "retrain (other seed)" and rows[1][1] == "–"  # the noise floor: not audited
    middle = [r[0] for r in rows[2:-1]]
    assert middle == sorted(middle, key=lambda m: -unit["rows"][m]["forget_score"])
    assert "## Evidence over model populations" in md and "ceiling (2nd retrained population)" in md


def test_the_leaderboard_sorts_by_f_not_by_avg_gap_when_an_audit_is_there(bench_with_audit):
    from unlearnkit.reporting.records import read_records
    from unlearnkit.reporting.report import leaderboard, ranking, summarize

    summary = summarize(read_records(bench_with_audit))
    audit = json.loads((bench_with_audit / "audit.json").read_text())
    gaps = {c["method"]: c["avg_gap"]["mean"] for c in summary}
    by_gap = sorted(("finetune", "neggrad"), key=lambda m: gaps[m])
    rows = audit["units"][0]["rows"]
    rows[by_gap[0]]["forget_score"], rows[by_gap[1]]["forget_score"] = 0.1, 0.9  # F now disagrees with Avg. Gap
    (_, header, table, _), = leaderboard(summary, (), audit)
    assert header[1] == "F ↑" and [r[0] for r in table][2:4] == [by_gap[1], by_gap[0]]
    (order,) = ranking(summary, audit).values()  # the demo's and the page's ranking: the table's, references left out
    assert order == [by_gap[1], by_gap[0]]
    (_, header, table, _), = leaderboard(summary, (), None)  # without an audit: by Avg. Gap, no F column
    assert header[1].startswith("Avg. Gap") and [r[0] for r in table][2:4] == by_gap
    assert list(ranking(summary).values()) == [by_gap]


def test_report_of_an_audit_folder_in_headless_chromium(tmp_path, bench_with_audit):
    import shutil

    from unlearnkit.cli import main

    folder = tmp_path / "audit"
    folder.mkdir()
    shutil.copy(bench_with_audit / "audit.json", folder / "audit.json")  # an `unlearnkit audit` folder
    assert main(["report", str(folder)]) == 0
    md = (folder / "report.md").read_text()
    assert md.startswith("# Audit: tiny_audit") and "`finetune`" not in md and "| finetune |" in md
    from test_bench import _chromium

    browser = _chromium()
    try:
        browser.get((folder / "report.html").as_uri())
        assert browser.title == "tiny_audit — unlearnkit audit"
        marks = browser.execute_script(
            "return Array.from(document.querySelectorAll('figure svg')).map(e => {"
            "const r = e.getBoundingClientRect(); return [r.width, r.height,"
            " Array.from(e.querySelectorAll('[id^=series-]')).map(g => g.id)]; })"
        )
    finally:
        browser.quit()
    assert len(marks) == 2 and all(w > 100 and h > 100 for w, h, _ in marks)
    bars, roc = (set(m) for _, _, m in marks)
    names = {"series-ceiling", "series-finetune", "series-neggrad", "series-floor"}
    assert {b.split("-eps-")[0] for b in bars} == names
    assert roc == {"series-retrain", "series-finetune", "series-neggrad", "series-original"}
