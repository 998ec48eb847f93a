"""The demo (`make demo` = `unlearnkit run`) runs the shipped benchmarks' set-ups with the leaderboard's best methods.

Issue 15: per scenario, the best methods of the leaderboard, ranked as every page ranks (F where audited, else
Avg. Gap), at the settings they ran with there. These tests read the committed benchmark files and
``docs/results/leaderboard.json``; a regenerated leaderboard that changes the winners fails them until the demo
follows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnkit.running.benchconfig import load_config
from unlearnkit.running.experiment import DEMO, DEMO_SETUPS, demo_configs

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "docs" / "results" / "leaderboard.json"
BENCHES = [b for b, _, _ in DEMO]


def _plain(x: object) -> object:
    return json.loads(json.dumps(x))


def _block(bench: str) -> dict:
    """The leaderboard table the demo follows: the tuned one where the benchmark is tuned, else the defaults one."""
    entry = json.loads(RECORD.read_text())["benchmarks"][bench]
    return entry.get("tuned") or entry["defaults"]


@pytest.mark.parametrize("bench", BENCHES)
def test_demo_setup_is_the_benchmark_files(bench):
    file = load_config(ROOT / "benchmarks" / f"{bench}.toml")
    (dataset,), (model,), (scenario,) = file.datasets, file.models, file.scenarios
    setup = DEMO_SETUPS[bench]
    assert setup["dataset"] == dataset
    assert (setup["model"], _plain(dict(setup.get("model_kwargs", {})))) == (model.name, _plain(model.options))
    assert (setup["scenario"], _plain(dict(setup["scenario_options"]))) == (scenario.name, _plain(scenario.options))
    assert (setup["train_size"], setup["holdout_fraction"]) == (file.train_size, file.holdout_fraction)
    assert setup["train"] == file.train


@pytest.mark.parametrize("bench", BENCHES)
def test_demo_runs_the_leaderboards_top_three_at_their_settings(bench):
    block = _block(bench)
    methods = next(m for b, _, m in DEMO if b == bench)
    assert list(methods) == block["ranking"][:3]
    for name, settings in methods.items():
        assert _plain(settings) == _plain(block["rows"][name]["params"]), name


def test_demo_configs_validate_and_a_setting_the_method_lacks_is_refused():
    import dataclasses

    from unlearnkit.errors import UnlearnkitError

    for config in demo_configs(seeds=(0,)):
        config.validate()  # every name and setting is accepted before any training
        name = config.methods[0]
        bad = dataclasses.replace(config, method_params={**config.method_params, name: {"no_such_knob": 1}})
        with pytest.raises(UnlearnkitError, match="no_such_knob"):  # so the check above is not vacuous
            bad.validate()
