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
    assert not per["rows"]["filtration"]["identical_members"] and not per["notes"]


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
    assert load_config(path).audit == {"models": 6, "protocol": "per_original", "data_seed": 0, "retain_sample": 2000}
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
