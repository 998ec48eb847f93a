"""The tuning facility: search spaces, an Optuna search with pruning, and unlearnkit tune on the holdout split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnkit.cli import main
from unlearnkit.errors import DivergenceError, ParameterError
from unlearnkit.methods import METHODS, make_method
from unlearnkit.reporting.records import read_records
from unlearnkit.running.benchconfig import load_config
from unlearnkit.running.tuning import Param, default_space, holdout_roles, parse_space, search

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "benchmarks" / "tiny.toml"


def test_parse_and_default_spaces():
    space = parse_space({"lr": {"low": 1e-3, "high": 0.1, "log": True}, "epochs": {"low": 1, "high": 9},
                         "z": {"choices": ["naive", "normalization"]}})  # fmt: skip
    assert space["lr"] == Param("lr", "float", 1e-3, 0.1, True)
    assert space["epochs"].kind == "int" and space["z"].choices == ("naive", "normalization")
    with pytest.raises(ParameterError, match="'lr' entry of the search space must have numbers low < high"):
        parse_space({"lr": {"low": 1.0, "high": 0.5}})
    with pytest.raises(ParameterError, match="needs low > 0 for a log scale"):
        parse_space({"lr": {"low": 0.0, "high": 0.5, "log": True}})
    d = default_space("filtration")
    assert d["z"].choices == ("naive", "normalization", "randomization", "zeroing")
    assert d["samples_per_class"] == Param("samples_per_class", "int", 25, 400, False)
    assert d["keep_outputs"].choices == (True, False)
    nd = default_space("neggrad_plus")
    assert 0 < nd["beta"].low < nd["beta"].high <= 1  # clipped to the setting's constraint


def test_search_finds_the_minimum_prunes_and_keeps_history():
    calls = []

    def objective(params, report):
        calls.append(params)
        value = (params["x"] - 2.0) ** 2 + (0 if params["flag"] == "b" else 5)
        for step in range(3):
            if report(step, value + (3 - step)):
                from unlearnkit.running.tuning import prune

                prune()
        return value

    space = parse_space({"x": {"low": -5.0, "high": 5.0}, "flag": {"choices": ["a", "b"]}})
    result = search(objective, space, trials=30, seed=0, fixed={"k": 1})
    assert result.best_params["flag"] == "b" and abs(result.best_params["x"] - 2.0) < 1.0
    assert result.best_params["k"] == 1 and all(c["k"] == 1 for c in calls)
    assert len(result.history) == 30
    states = {h["state"] for h in result.history}
    assert "COMPLETE" in states and "PRUNED" in states  # the median pruner stopped some trials
    again = search(objective, space, trials=30, seed=0, fixed={"k": 1})
    assert again.best_params == result.best_params  # seeded


def test_holdout_roles_never_use_the_test_split(tiny_splits):
    tuned = holdout_roles(tiny_splits, seed=3)
    holdout_rows = set(tiny_splits.holdout.indices.tolist())
    assert set(tuned.test.indices.tolist()) <= holdout_rows and set(tuned.holdout.indices.tolist()) <= holdout_rows
    assert not set(tuned.test.indices.tolist()) & set(tuned.holdout.indices.tolist())
    assert tuned.test.x is tiny_splits.holdout.x  # rows of the training partition, not of the test partition
    assert tuned.test.x is not tiny_splits.test.x


@pytest.fixture()
def tiny_splits(class_splits):
    return class_splits


def test_tune_writes_a_fragment_that_bench_uses(tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["tune", str(TINY), "--method", "finetune", "--scenario", "random", "--trials", "4", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "of the complete ones collapsed the model (retain accuracy at most twice chance)" in capsys.readouterr().out
    best = (out / "best.toml").read_text()
    assert "[methods.finetune]" in best and "epochs = 3" in best  # the file's own setting stays fixed
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]) == 4 and history["tuning_seeds"] == [1000, 1001]
    assert all(h["params"]["epochs"] == 3 for h in history["history"])
    assert history["history"][0]["params"]["lr"] == METHODS.get("finetune").defaults["lr"]  # the defaults first
    cfg = load_config(TINY, settings=[out / "best.toml"])
    tuned = next(m for m in cfg.methods if m.name == "finetune").options
    assert tuned == history["best_params"]
    run = tmp_path / "run"
    assert main(["bench", str(TINY), "--out", str(run), "--seeds", "0", "--settings", str(out / "best.toml"),
                 "--no-progress"]) == 0  # fmt: skip
    from unlearnkit.reporting.report import markdown_report

    assert f"--settings {out / 'best.toml'} --out RUN_DIR" in markdown_report(run)  # the rerun line names the fragment
    rows = [r for r in read_records(run) if r["method"] == "finetune"]
    assert rows and all(r["params"]["lr"] == pytest.approx(history["best_params"]["lr"]) for r in rows)
    assert main(args) == 2  # the output folder now holds a search: refused
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--method", "scrub"], "'--method' parameter must be a method of the file"),
        (["--method", "finetune", "--tuning-seeds", "0,5"], "must not share seeds with the file's reported seeds"),
        (["--method", "filtration", "--scenario", "random"], "cannot run on scenario 'random'"),
        (["--method", "finetune", "--scenario", "mislabel"], "'--scenario' parameter must be one of the file's"),
        (["--method", "finetune", "--trials", "0"], "'--trials' parameter of tune must be an int in [1, inf); got 0"),
    ],
)
def test_tune_bad_input(tmp_path, capsys, extra, match):
    assert main(["tune", str(TINY), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", [n for n in METHODS.names() if METHODS.get(n).search_space is not None])
def test_declared_search_spaces_name_real_settings_and_stay_inside_their_constraints(name):
    from unlearnkit.running.tuning import method_space

    space = method_space(name)
    cls = METHODS.get(name)
    assert space and set(space) <= set(cls.defaults)
    for p in space.values():  # both ends of every range, and every choice, are valid settings
        values = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
        for v in values:
            v = int(v) if p.kind == "int" else v
            make_method(name, **{p.name: v}).validate_params()


def test_search_keeps_the_facts_an_objective_attaches_to_each_trial():
    def objective(params, report):
        return params["x"] ** 2, {"collapsed": params["x"] > 0, "x_seen": params["x"]}

    result = search(objective, parse_space({"x": {"low": -1.0, "high": 1.0}}), trials=6, seed=0, prune=False)
    for h in result.history:
        assert h["facts"] == {"collapsed": h["params"]["x"] > 0, "x_seen": h["params"]["x"]}
        assert h["value"] == pytest.approx(h["params"]["x"] ** 2)


def test_a_search_whose_every_trial_fails_raises_its_own_error_and_a_bug_is_not_mistaken_for_it():
    from unlearnkit.errors import NoTrialCompletedError

    space = parse_space({"x": {"low": -1.0, "high": 1.0}})

    def diverges(params, report):
        raise DivergenceError("the loss became NaN")

    with pytest.raises(NoTrialCompletedError, match=r"no trial of the search completed \(3 tried\)"):
        search(diverges, space, trials=3, seed=0, prune=False)

    # the leaderboard writes NoTrialCompletedError down as "every trial failed" and moves on; a bug is not that:
    # it comes out of search as itself, so nothing records it as a final result
    def buggy(params, report):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        search(buggy, space, trials=3, seed=0, prune=False)


def test_collapse_is_retain_accuracy_at_most_twice_chance():
    from unlearnkit.running.tuning import collapsed

    assert collapsed(0.2, 10) and collapsed(0.05, 10) and not collapsed(0.21, 10)
    assert collapsed(1.0, 2) and not collapsed(0.5, 5)


def test_the_holdout_objective_flags_settings_that_collapse_the_model(tmp_path):
    from unlearnkit.running.benchmark import unit_spec
    from unlearnkit.running.tuning import holdout_gap_objective

    cfg = load_config(TINY)
    random = next(s for s in cfg.scenarios if s.name == "random")
    spec = unit_spec(cfg, cfg.datasets[0], cfg.models[0], random)
    objective = holdout_gap_objective(spec, "neggrad", (1000,), str(tmp_path / "cache"))
    never = lambda step, value: False  # noqa: E731
    gentle, gentle_facts = objective({"epochs": 1, "lr": 1e-4}, never)
    wrecked, wrecked_facts = objective({"epochs": 20, "lr": 0.5}, never)  # gradient ascent on the forget set
    assert not gentle_facts["collapsed"] and gentle_facts["retain_accuracy"] > 0.9
    assert wrecked_facts["collapsed"] and wrecked_facts["retain_accuracy"] <= 0.2
    assert wrecked > gentle


def test_a_killed_search_resumes_per_trial_and_gives_the_uninterrupted_result(tmp_path):
    from unlearnkit.running.tuning import memoized, prune

    calls: list[float] = []

    def objective(params, report):
        calls.append(params["x"])
        if params["x"] > 4.5:
            raise ParameterError("x too large")  # a failed trial: replayed as failed
        value = (params["x"] - 2.0) ** 2
        for step in range(3):
            if report(step, value + (3 - step)):
                prune()
        return value, {"x": params["x"]}

    space = parse_space({"x": {"low": -5.0, "high": 5.0}})
    whole = search(objective, space, trials=25, seed=0)
    assert {h["state"] for h in whole.history} >= {"COMPLETE", "PRUNED", "FAIL"}
    calls.clear()

    def killed_after(n):
        def run(params, report):
            if len(calls) == n:
                raise KeyboardInterrupt  # the session ends mid-search
            return objective(params, report)

        return run

    memo = tmp_path / "trials.json"
    with pytest.raises(KeyboardInterrupt):
        search(memoized(killed_after(10), memo), space, trials=25, seed=0)
    assert len(json.loads(memo.read_text())) == 10
    calls.clear()
    resumed = search(memoized(objective, memo), space, trials=25, seed=0)
    assert len(calls) == 15  # the 10 kept trials are replayed, not rerun
    assert resumed.best_params == whole.best_params and resumed.best_value == whole.best_value
    assert [(h["state"], h["value"], h.get("facts"), h["intermediate"]) for h in resumed.history] == [
        (h["state"], h["value"], h.get("facts"), h["intermediate"]) for h in whole.history
    ]
    assert [h.get("error") for h in resumed.history] == [h.get("error") for h in whole.history]


def test_a_search_tries_its_start_settings_first_and_never_reports_worse():
    def objective(params, report):
        return (params["x"] - 3.0) ** 2

    space = parse_space({"x": {"low": -5.0, "high": 5.0}})
    result = search(objective, space, trials=3, seed=0, start=[{"x": 3.0}], prune=False)
    assert result.history[0]["params"] == {"x": 3.0}
    assert result.best_params == {"x": 3.0} and result.best_value == 0.0  # 2 sampled trials do not hit 3.0
    assert search(objective, space, trials=3, seed=0, prune=False).best_value > 0.0
    with pytest.raises(ParameterError, match="'start' parameter must name settings of the space; got \\['y'\\]"):
        search(objective, space, trials=2, start=[{"y": 1.0}])


def test_defaults_in_gives_the_settings_a_method_runs_at():
    from unlearnkit.running.tuning import defaults_in, method_space

    space = method_space("neggrad")
    cls = METHODS.get("neggrad")
    first = defaults_in("neggrad", space, {"epochs": 10, "lr": 0.05})
    assert first["epochs"] == 10 and first["lr"] == 0.05  # the file's settings over the defaults
    assert set(first) <= set(space)
    assert all(first[k] == cls.defaults[k] for k in first if k not in ("epochs", "lr"))
    assert all(k in first for k in space if cls.defaults.get(k) is not None and space[k].kind != "categorical")


def test_the_kept_trials_say_how_long_each_took(tmp_path):
    import time

    from unlearnkit.running.tuning import memoized

    def slow(params, report):
        time.sleep(0.05)
        return params["x"] ** 2

    memo = tmp_path / "trials.json"
    search(memoized(slow, memo), parse_space({"x": {"low": -1.0, "high": 1.0}}), trials=3, seed=0, prune=False)
    assert all(e["seconds"] >= 0.05 for e in json.loads(memo.read_text()).values())
