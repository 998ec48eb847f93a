"""Nothing lost, nothing silently wrong: sequential deletions, output targets, cut records, edited sidecars,
temporaries left by killed writers, read-only folders, falsy settings.

Faults are real: SIGKILL / SIGTERM to a real process, a real read-only tmpfs
mount (skipped, saying why, only where mounting is not allowed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from unlearnkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "3", "--seed", "0", "--no-progress"]
FIRST = list(range(0, 120, 4))  # request 1: 30 training positions
SECOND = list(range(2, 200, 6))  # request 2: 33 positions, 10 of them also in request 1
QUICK = {  # fewer steps, so that every method runs in about a second
    "neggrad_plus": ["--set", "epochs=1"],
    "two_stage": ["--set", "neutralize_max_epochs=2", "--set", "epochs=1"],
    "forsaken": ["--set", "iterations=2"],
    "rnd": ["--set", "epochs=1"],
    "rld": ["--set", "epochs=1"],
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust")
    assert main([*TRAIN, "--out", str(d / "plain")]) == 0
    assert main([*TRAIN, "--sisa-shards", "2", "--sisa-slices", "2", "--out", str(d / "sisa")]) == 0
    assert main([*TRAIN, "--sisa-shards", "2", "--sisa-epsilon", "8", "--out", str(d / "sisa_dp")]) == 0
    cand = d / "cand.txt"
    cand.write_text("\n".join(map(str, sorted(set(FIRST) | set(SECOND)))) + "\n")
    assert main([*TRAIN, "--smu-candidates", str(cand), "--out", str(d / "smu")]) == 0
    for name, rows in (("first.txt", FIRST), ("second.txt", SECOND)):
        (d / name).write_text("\n".join(map(str, rows)) + "\n")
    return d


def _sample_methods() -> list[str]:
    from unlearnkit import METHODS

    return [n for n, c in METHODS.items() if "samples" in c.supports]


@pytest.mark.parametrize("method", _sample_methods())
def test_a_second_deletion_keeps_the_first_one_deleted(models, tmp_path, method):
    """Request 2's retain set excludes request 1, for every method; the sidecar keeps both deletions."""
    base = models / (method if method in ("sisa", "sisa_dp", "smu") else "plain")
    meta0 = json.loads((base / "model.json").read_text())
    n_train = len(json.loads((base / "training_rows.json").read_text())["rows"])
    extra = QUICK.get(method, [])
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["unlearn", "--model", str(base), "--method", method, "--forget-indices", str(models / "first.txt"),
                 "--out", str(one), "--no-progress", *extra]) == 0  # fmt: skip
    assert main(["unlearn", "--model", str(one), "--method", method, "--forget-indices", str(models / "second.txt"),
                 "--out", str(two), "--no-progress", *extra]) == 0  # fmt: skip
    meta = json.loads((two / "model.json").read_text())
    assert [d["forget_positions"] for d in meta["deletions"]] == [FIRST, sorted(set(SECOND) - set(FIRST))]
    last = meta["unlearning"]
    assert last == meta["deletions"][-1] and last["n_forget"] == len(set(SECOND) - set(FIRST))
    assert last["n_already_forgotten"] == len(FIRST)
    assert last["n_retain"] == n_train - len(set(FIRST) | set(SECOND))
    if method == "retrain":  # trains on exactly the retain set, every epoch: request 1 is not learned again
        assert last["samples_seen"]["retain"] == meta0["training"]["epochs"] * last["n_retain"]
    assert "deletions" not in meta0


def test_evaluate_after_two_deletions_reads_the_last_one(models, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--method", "retrain", "--no-progress"]
    assert main(["unlearn", "--model", str(models / "plain"), *args, "--forget-indices", str(models / "first.txt"),
                 "--out", str(one)]) == 0  # fmt: skip
    assert main(["unlearn", "--model", str(one), *args, "--forget-indices", str(models / "second.txt"),
                 "--out", str(two)]) == 0  # fmt: skip
    assert main(["evaluate", "--model", str(two), "--json", str(tmp_path / "e.json")]) == 0
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["config"]["n_forget"] == len(set(SECOND) - set(FIRST))


def test_an_old_sidecar_with_explicit_indices_is_refused_not_reverted(models, tmp_path, capsys):
    one = tmp_path / "one"
    assert main(["unlearn", "--model", str(models / "plain"), "--method", "retrain", "--forget-indices",
                 str(models / "first.txt"), "--out", str(one), "--no-progress"]) == 0  # fmt: skip
    old = tmp_path / "old"
    shutil.copytree(one, old)
    meta = json.loads((old / "model.json").read_text())
    del meta["deletions"], meta["unlearning"]["forget_positions"]  # what unlearnkit 0.1 wrote
    meta["format_version"] = 1
    (old / "model.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["unlearn", "--model", str(old), "--method", "retrain", "--forget-indices",
                 str(models / "second.txt"), "--out", str(tmp_path / "x"), "--no-progress"]) == 2  # fmt: skip
    assert "does not list them" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_old_sidecar_with_a_class_request_is_rebuilt(models, tmp_path):
    one = tmp_path / "one"
    assert main(["unlearn", "--model", str(models / "plain"), "--method", "finetune", "--set", "epochs=1",
                 "--forget-classes", "3", "--out", str(one), "--no-progress"]) == 0  # fmt: skip
    meta = json.loads((one / "model.json").read_text())
    threes = meta["deletions"][0]["forget_positions"]
    del meta["deletions"], meta["unlearning"]["forget_positions"]
    meta["format_version"] = 1
    (one / "model.json").write_text(json.dumps(meta))
    assert main(["unlearn", "--model", str(one), "--method", "finetune", "--set", "epochs=1", "--forget-indices",
                 str(models / "second.txt"), "--out", str(tmp_path / "two"), "--no-progress"]) == 0  # fmt: skip
    two = json.loads((tmp_path / "two" / "model.json").read_text())
    assert two["deletions"][0]["forget_positions"] == threes
    assert not set(two["deletions"][1]["forget_positions"]) & set(threes)


# -- output targets ---------------------------------------------------------------------------------


def _fails(args, capsys, match):
    """Exit 2 with exactly one error line (progress lines may come before it) that says ``match``."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1] and match in errors[0], err


def test_json_never_overwrites_silently_and_never_writes_into_a_model(models, tmp_path, capsys):
    orig = models / "plain"
    idx = tmp_path / "delete_me.txt"
    idx.write_text("1\n2\n3\n")
    unlearn = ["unlearn", "--model", str(orig), "--method", "finetune", "--set", "epochs=1", "--no-progress"]
    sidecar = (orig / "model.json").read_bytes()
    # the deletion list itself, even with --force
    _fails([*unlearn, "--forget-indices", str(idx), "--out", str(tmp_path / "a"), "--json", str(idx), "--force"],
           capsys, "names an input file")  # fmt: skip
    assert idx.read_text() == "1\n2\n3\n"
    # a model's sidecar, and the folder being created
    _fails([*unlearn, "--forget-indices", str(idx), "--out", str(tmp_path / "b"), "--json", str(orig / "model.json"),
            "--force"], capsys, "model folder")  # fmt: skip
    _fails([*unlearn, "--forget-indices", str(idx), "--out", str(tmp_path / "c"), "--json",
            str(tmp_path / "c" / "model.json")], capsys, "--out folder")  # fmt: skip
    _fails(["evaluate", "--model", str(orig), "--forget-indices", str(idx), "--json", str(orig / "model.json")],
           capsys, "model folder")  # fmt: skip
    assert (orig / "model.json").read_bytes() == sidecar
    # an existing file: refused without --force, replaced with it
    existing = tmp_path / "report.json"
    existing.write_text("keep me")
    _fails(["evaluate", "--model", str(orig), "--forget-indices", str(idx), "--json", str(existing)], capsys,
           "already exists")  # fmt: skip
    assert existing.read_text() == "keep me"
    assert main(["evaluate", "--model", str(orig), "--forget-indices", str(idx), "--json", str(existing),
                 "--force"]) == 0  # fmt: skip
    assert "results" in json.loads(existing.read_text())
    assert not any((tmp_path / n).exists() for n in "abc")


@pytest.fixture
def readonly_dir(tmp_path):
    """A real read-only file system (root ignores permission bits, not a read-only mount)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {r.stderr.strip()}")
    yield ro
    subprocess.run(["umount", str(ro)], check=False)


def test_unwritable_targets_are_refused_before_any_work(models, tmp_path, capsys, readonly_dir):
    idx = tmp_path / "idx.txt"
    idx.write_text("1\n2\n")
    start = time.perf_counter()
    _fails(["unlearn", "--model", str(models / "plain"), "--method", "retrain", "--forget-indices", str(idx),
            "--out", str(tmp_path / "u"), "--json", str(readonly_dir / "r.json"), "--no-progress"],
           capsys, "cannot be written")  # fmt: skip
    _fails([*TRAIN, "--epochs", "200", "--out", str(readonly_dir / "m")], capsys, "cannot be written")
    assert time.perf_counter() - start < 10  # refused up front: 200 epochs would take far longer
    assert not (tmp_path / "u").exists() and list(readonly_dir.iterdir()) == []


def test_an_empty_read_only_out_folder_is_not_replaced(tmp_path, capsys):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        _fails([*TRAIN, "--out", str(out)], capsys, "read-only or another user's")
        assert out.is_dir() and stat.S_IMODE(out.stat().st_mode) == 0o555
    finally:
        out.chmod(0o755)
    assert main([*TRAIN, "--out", str(out)]) == 0  # our own writable empty folder is fine


# -- records cut by a kill or a full disk ----------------------------------------------------------


TINY = ROOT / "benchmarks" / "tiny.toml"


@pytest.fixture(scope="module")
def tiny_seed0(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("tiny") / "tiny0.toml"
    cfg.write_text(TINY.read_text().replace("seeds = [0, 1]", "seeds = [0]"))
    out = cfg.parent / "run"
    assert main(["bench", str(cfg), "--out", str(out), "--no-progress"]) == 0
    return cfg, out


def _rows(out):
    from unlearnkit.reporting.records import read_records

    return {(r["cell"], r["seed"]): r["status"] for r in read_records(out)}


def test_resume_repairs_a_cut_last_line(tiny_seed0, tmp_path, capsys):
    cfg, done = tiny_seed0
    out = tmp_path / "cut"
    shutil.copytree(done, out, ignore=shutil.ignore_patterns("cache"))
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2])  # a kill mid-append
    capsys.readouterr()
    assert main(["bench", str(cfg), "--out", str(out), "--resume", "--cache", str(done / "cache"),
                 "--no-progress"]) == 0  # fmt: skip
    assert "dropped a partial last line" in capsys.readouterr().err
    assert _rows(out) == _rows(done)
    assert all(json.loads(ln) for ln in (out / "records.jsonl").read_text().splitlines())


def test_report_says_when_a_run_is_short(tiny_seed0, tmp_path):
    _, done = tiny_seed0
    out = tmp_path / "short"
    shutil.copytree(done, out, ignore=shutil.ignore_patterns("cache"))
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:3]) + '{"cell": "x", "se' + "\n" + "".join(lines[4:]))
    assert main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert f"INCOMPLETE RUN: {len(lines) - 1} of {len(lines)} rows are recorded" in md
    assert "1 damaged line(s)" in md and "INCOMPLETE RUN" in (out / "report.html").read_text()
    assert "INCOMPLETE" not in (done / "report.md").read_text() if (done / "report.md").exists() else True


def test_bench_exits_non_zero_when_a_row_failed(tmp_path, capsys):
    cfg = tmp_path / "fail.toml"
    text = TINY.read_text().replace("filtration = { samples_per_class = 20 }",
                                    "filtration = { samples_per_class = 20, max_condition = 1.000001 }")  # fmt: skip
    cfg.write_text(text.replace("seeds = [0, 1]", "seeds = [0]"))
    capsys.readouterr()
    assert main(["bench", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 3
    captured = capsys.readouterr()
    assert "10 done, 1 failed" in captured.out and "error: 1 of 11 rows failed" in captured.err


# -- edited sidecars --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m["dataset"]["split"].update(seed=7), "train_rows_sha256 mismatch"),
        (lambda m: m["dataset"]["split"].update(train_size=800), "train_rows_sha256 mismatch"),
        (lambda m: m.update(format_version=9), "format_version 9"),
        (lambda m: m.update(format_version="2"), "format_version '2'"),
    ],
)
def test_an_edited_sidecar_is_caught(models, tmp_path, capsys, edit, match):
    copy = tmp_path / "m"
    shutil.copytree(models / "plain", copy)
    meta = json.loads((copy / "model.json").read_text())
    edit(meta)
    (copy / "model.json").write_text(json.dumps(meta))
    _fails(["unlearn", "--model", str(copy), "--method", "retrain", "--forget-classes", "1", "--out",
            str(tmp_path / "u"), "--no-progress"], capsys, match)  # fmt: skip
    assert not (tmp_path / "u").exists()


# -- temporaries of killed writers -------------------------------------------------------------------


WRITER = textwrap.dedent(
    """
    import sys, time
    import torch
    from unlearnkit.cli import install_sigterm_handler
    from unlearnkit.core.artifacts import save_model

    class Slow(dict):  # metadata whose reading takes a while: the writer is inside save_model, its folder made
        def items(self):
            print("inside", flush=True)
            time.sleep(60)
            return super().items()

    install_sigterm_handler()
    save_model(torch.nn.Linear(2, 2), sys.argv[1], Slow(architecture={}))
    """
)


def _writer(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
    return proc


def _temporaries(folder: Path, name: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


def test_sigterm_leaves_no_temporary_folder(tmp_path):
    proc = _writer(tmp_path / "model")
    assert len(_temporaries(tmp_path, "model")) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert _temporaries(tmp_path, "model") == [] and not (tmp_path / "model").exists()


def test_a_killed_writers_folder_is_swept_and_a_live_writers_kept(tmp_path):
    import torch

    from unlearnkit.core.artifacts import load_state, save_model

    dead = _writer(tmp_path / "model")
    dead.send_signal(signal.SIGKILL)
    dead.wait(30)
    [left] = _temporaries(tmp_path, "model")  # SIGKILL cannot be caught: its folder stays until the next write
    live = _writer(tmp_path / "model")  # the next writer sweeps the dead one's folder first
    try:
        [kept] = _temporaries(tmp_path, "model")
        assert kept != left and f"-{live.pid}." in kept.name
        save_model(torch.nn.Linear(2, 2), tmp_path / "model", {"architecture": {}})
        assert _temporaries(tmp_path, "model") == [kept]  # a live writer's folder is never touched
        load_state(tmp_path / "model", torch.nn.Linear(2, 2))
    finally:
        live.kill()
        live.wait(30)


def test_a_stale_temporary_is_swept_even_if_its_pid_is_alive(tmp_path):
    from unlearnkit.files import STALE_AFTER_SECONDS, sweep_temporaries, temporary_prefix

    mine = tmp_path / f"{temporary_prefix('x.json')}abc.tmp"  # this live process's name
    mine.write_text("")
    assert sweep_temporaries(tmp_path, "x.json") == []
    old = time.time() - STALE_AFTER_SECONDS - 10
    os.utime(mine, (old, old))
    assert sweep_temporaries(tmp_path, "x.json") == [mine] and not mine.exists()


# -- no falsy fallback to a default; deletions are named --------------------------------------------


def test_forget_fraction_zero_is_refused_not_defaulted(tmp_path, capsys):
    _fails([*TRAIN, "--scenario", "random", "--forget-fraction", "0", "--out", str(tmp_path / "m")], capsys,
           "must be a float in (0, 1); got 0.0")  # fmt: skip
    assert not (tmp_path / "m").exists()


def test_unlearn_needs_an_explicit_deletion(models, tmp_path, capsys):
    _fails(["unlearn", "--model", str(models / "plain"), "--method", "retrain", "--out", str(tmp_path / "u")],
           capsys, "must be told what to forget")  # fmt: skip


# -- broken results are not reported as successes ----------------------------------------------------


def test_a_diverged_or_untrained_model_is_not_saved(tmp_path, capsys):
    _fails([*TRAIN, "--lr", "inf", "--out", str(tmp_path / "a")], capsys, "'lr' parameter")  # refused up front
    _fails([*TRAIN, "--epochs", "0", "--out", str(tmp_path / "b")], capsys, "'--epochs' parameter must be an int >= 1")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_model_near_chance_is_flagged_and_train_prints_what_it_reached(tmp_path, capsys):
    capsys.readouterr()
    assert main([*TRAIN, "--lr", "1e-7", "--out", str(tmp_path / "c")]) == 0
    out, err = capsys.readouterr()
    assert "WARNING: holdout accuracy is" in err and "near chance (10.0% for 10 classes)" in err
    assert "train accuracy" in out and "holdout accuracy" in out
    assert main([*TRAIN, "--epochs", "6", "--out", str(tmp_path / "d")]) == 0
    out, err = capsys.readouterr()
    assert "WARNING" not in err
    reached = json.loads((tmp_path / "d" / "model.json").read_text())["reached"]
    assert reached["holdout_accuracy"] > 0.5 and f"holdout accuracy {100 * reached['holdout_accuracy']:.1f}%" in out


def test_a_wrecked_unlearned_model_is_refused_or_flagged(models, tmp_path, capsys):
    base = ["unlearn", "--model", str(models / "plain"), "--method", "finetune", "--forget-classes", "1",
            "--no-progress"]  # fmt: skip
    _fails([*base, "--set", "lr=1e30", "--out", str(tmp_path / "e")], capsys, "training diverged")
    assert not (tmp_path / "e").exists()
    assert main([*base, "--set", "lr=100", "--out", str(tmp_path / "f")]) == 0  # measured: retain accuracy 10.7%
    assert "WARNING: retain accuracy after unlearning is" in capsys.readouterr().err


def test_the_default_model_fits_the_dataset(tmp_path):
    args = [a for a in TRAIN if a not in ("--model", "mlp")]
    assert "mlp" not in args
    assert main([*args, "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text())["architecture"]["name"] == "mlp"


def test_an_index_request_is_recorded_as_indices(models, tmp_path):
    assert main(["unlearn", "--model", str(models / "plain"), "--method", "retrain", "--forget-indices",
                 str(models / "first.txt"), "--out", str(tmp_path / "u"), "--no-progress"]) == 0  # fmt: skip
    record = json.loads((tmp_path / "u" / "record.json").read_text())
    assert record["results"][0]["scenario"] == "indices"


# -- surprises in what is read ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("1\n1_000\n", "line 2 is '1_000'"),
        ("+5\n", "line 1 is '+5'"),
        ("\uff15\n", "line 1 is '\uff15'"),  # a full-width 5
        ("1e3\n", "line 1 is '1e3'"),
    ],
)
def test_index_files_hold_plain_integers(models, tmp_path, capsys, content, match):
    idx = tmp_path / "idx.txt"
    idx.write_text(content, encoding="utf-8")
    _fails(["unlearn", "--model", str(models / "plain"), "--method", "retrain", "--forget-indices", str(idx),
            "--out", str(tmp_path / "u")], capsys, match)  # fmt: skip


def test_index_files_with_a_bom_are_read_and_garbage_npy_is_named(tmp_path):
    from unlearnkit.data import ForgetRequest
    from unlearnkit.errors import RequestError

    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf3\n7\n")
    assert ForgetRequest.from_file(bom).indices == (3, 7)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(RequestError, match="not a .npy array .*NumPy file signature"):
        ForgetRequest.from_file(junk)


def test_forget_rows_name_dataset_rows(models, tmp_path, capsys):
    rows = json.loads((models / "plain" / "training_rows.json").read_text())["rows"]
    wanted = tmp_path / "rows.txt"
    wanted.write_text("\n".join(str(rows[p]) for p in FIRST) + "\n")
    assert main(["unlearn", "--model", str(models / "plain"), "--method", "retrain", "--forget-rows", str(wanted),
                 "--out", str(tmp_path / "u"), "--no-progress"]) == 0  # fmt: skip
    meta = json.loads((tmp_path / "u" / "model.json").read_text())
    assert meta["unlearning"]["forget_positions"] == FIRST
    held_out = sorted(set(range(max(rows) + 1)) - set(rows))[0]  # a holdout row: never trained on
    wanted.write_text(f"{rows[0]}\n{held_out}\n")
    _fails(["unlearn", "--model", str(models / "plain"), "--method", "retrain", "--forget-rows", str(wanted),
            "--out", str(tmp_path / "v")], capsys, f"e.g. row {held_out}")  # fmt: skip


def test_repeated_seeds_and_an_ignored_data_dir_are_refused(tmp_path, capsys):
    _fails(["run", "--dataset", "digits", "--seeds", "0,0", "--out", str(tmp_path / "r")], capsys,
           "must not repeat a value")  # fmt: skip
    _fails([*TRAIN, "--data-dir", str(tmp_path), "--out", str(tmp_path / "m")], capsys,
           "does not apply to the 'digits' dataset")  # fmt: skip


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    pytest.importorskip("yaml")
    bomb = tmp_path / "bomb.yaml"
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\nname: bomb\n")
    start = time.perf_counter()
    _fails(["bench", str(bomb), "--out", str(tmp_path / "run")], capsys, "YAML aliases (*name) are not allowed")
    assert time.perf_counter() - start < 5


def test_a_bad_settings_fragment_is_named(tmp_path, capsys):
    frag = tmp_path / "best.toml"
    frag.write_text("[methods.finetune]\nlr = -1.0\n")
    _fails(["bench", str(TINY), "--settings", str(frag), "--out", str(tmp_path / "run")], capsys,
           f"{frag}: methods.finetune:")  # fmt: skip


def test_evaluate_refuses_a_reference_that_is_not_the_retrained_model(models, tmp_path, capsys):
    def unlearn(method, idx, out, *extra):
        assert main(["unlearn", "--model", str(models / "plain"), "--method", method, "--forget-indices", str(idx),
                     "--out", str(tmp_path / out), "--no-progress", *extra]) == 0  # fmt: skip

    unlearn("finetune", models / "first.txt", "ft")
    unlearn("retrain", models / "first.txt", "ref")
    unlearn("retrain", models / "second.txt", "other")
    evaluate = ["evaluate", "--model", str(tmp_path / "ft"), "--reference"]
    _fails([*evaluate, str(models / "plain")], capsys, "has no unlearning record (an original model?)")
    _fails([*evaluate, str(tmp_path / "ft")], capsys, "it is 'finetune'")
    _fails([*evaluate, str(tmp_path / "other")], capsys, "not the same retain set")
    assert main([*evaluate, str(tmp_path / "ref")]) == 0


# -- the environment's errors: one line, exit 2, nothing partial -------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A real 8 KiB tmpfs: big enough for a folder, too small for a model's weights."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, full_disk):
    _fails([*TRAIN, "--out", str(full_disk / "m")], capsys, "No space left on device")
    assert list(full_disk.iterdir()) == []  # neither the model nor its temporary folder


def test_a_closed_pipe_ends_quietly():
    code = "from unlearnkit.cli import main; raise SystemExit(main(['list', 'methods']))"
    r = subprocess.run(f'{sys.executable} -c "{code}" | head -1', shell=True, capture_output=True, text=True)
    assert r.stdout.startswith("method") and r.stderr == ""


@pytest.mark.parametrize("seed", ["-5", "1e23", "4294967296"])
def test_seeds_out_of_range_are_one_line(tmp_path, capsys, seed):
    _fails([*TRAIN, "--seed", seed, "--out", str(tmp_path / "m")], capsys, "must be an int in [0, 4294967295]")


def test_out_naming_a_file_is_refused(tiny_seed0, tmp_path, capsys):
    _, done = tiny_seed0
    target = tmp_path / "a_file"
    target.write_text("x")
    _fails(["report", str(done), "--out", str(target)], capsys, "must name a folder, not an existing file")
    _fails(["bench", str(TINY), "--out", str(target)], capsys, "must name a folder, not an existing file")
    assert target.read_text() == "x"


def test_invalid_utf8_in_a_benchmark_file_and_infinity_settings_are_one_line(models, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(TINY.read_bytes().replace(b"digits, MLP", b"digits, \xff\xfe MLP"))
    _fails(["bench", str(bad), "--out", str(tmp_path / "run")], capsys, "not UTF-8 text")
    for value in ("Infinity", "NaN", "-Infinity"):
        args = ["unlearn", "--model", str(models / "plain"), "--method", "finetune", "--set", f"lr={value}",
                "--forget-classes", "1", "--out", str(tmp_path / "u")]  # fmt: skip
        _fails(args, capsys, "The 'lr' parameter of Finetune")
    assert not (tmp_path / "run").exists() and not (tmp_path / "u").exists()
