"""The deletion-request ledger (issue 18, part 1): round trips, tamper detection, concurrency, bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit.cli import main
from unlearnkit.errors import ParameterError
from unlearnkit.running.ledger import LEDGER, RECEIPT, Ledger, Registry, read_subjects_csv

TRAIN = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--seed", "0", "--no-progress"]
N_ROWS = 1797  # the digits dataset


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "original"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture()
def registry(tmp_path, model_dir):
    reg = Registry.init(tmp_path / "prod", model_dir, dataset_rows=N_ROWS,
                        subjects={"user-1": [5, 9, 40], "user-2": [7]}, data={"dataset": "digits"})  # fmt: skip
    yield reg
    reg.close()


def test_an_untouched_registry_verifies_and_requests_round_trip(registry, model_dir):
    assert registry.verify() == []
    assert registry.current().name == "v0000"
    assert sorted(p.name for p in registry.current().iterdir()) == sorted([*(p.name for p in model_dir.iterdir()),
                                                                            RECEIPT])  # fmt: skip
    a = registry.submit(subject="user-1", reason="GDPR art. 17, ticket 5531")
    b = registry.submit(rows=[100, 3], reason="support ticket")
    reqs = {r["id"]: r for r in registry.requests()}
    assert reqs[a]["rows"] == [5, 9, 40] and reqs[a]["subject"] == "user-1" and reqs[a]["state"] == "pending"
    assert reqs[b]["rows"] == [3, 100] and reqs[b]["reason"] == "support ticket"
    assert [r["id"] for r in registry.pending()] == [a, b]
    again = Registry(registry.folder)  # a second process's view: the same rows
    assert again.requests() == registry.requests() and again.verify() == []
    again.close()


def test_a_request_for_rows_already_forgotten_is_recorded_as_honoured_not_applied_twice(registry):
    first = registry.submit(rows=[11, 12])
    registry.ledger.append("state", {"request": first, "state": "applied", "version": 1})
    again = registry.submit(rows=[12])
    states = {r["id"]: r["state"] for r in registry.requests()}
    assert states == {first: "applied", again: "already_honoured"} and registry.pending() == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"subject": "nobody"}, "must be a subject of the registry; got 'nobody'"),
    ({"rows": [N_ROWS]}, rf"dataset rows in \[0, {N_ROWS}\); got {N_ROWS}"),
    ({"rows": [-1]}, "got -1"),
    ({"rows": [2, 2]}, "must not repeat a row"),
    ({"rows": []}, "names no dataset row"),
    ({}, "exactly one of 'subject' or 'rows'; got neither"),
    ({"subject": "user-1", "rows": [1]}, "got both"),
])  # fmt: skip
def test_bad_requests_are_refused_in_one_line_and_change_nothing(registry, kwargs, match):
    before = registry.ledger.head()
    with pytest.raises(ParameterError, match=match):
        registry.submit(**kwargs)
    assert registry.ledger.head() == before


def test_a_folder_that_is_not_a_registry_and_a_second_init_are_refused(tmp_path, registry, model_dir):
    with pytest.raises(ParameterError, match="must be a folder made by unlearnkit registry init"):
        Registry(tmp_path / "elsewhere")
    with pytest.raises(ParameterError, match="already holds a registry"):
        Registry.init(registry.folder, model_dir, dataset_rows=N_ROWS)
    with pytest.raises(ParameterError, match="gives dataset row 3 to both 'a' and 'b'"):
        Registry.init(tmp_path / "dup", model_dir, dataset_rows=N_ROWS, subjects={"a": [3], "b": [3]})
    assert not (tmp_path / "dup").exists() or not (tmp_path / "dup" / LEDGER).exists()


def _sql(registry: Registry, statement: str, *args) -> None:
    db = sqlite3.connect(str(registry.folder / LEDGER))
    db.execute(statement, args)
    db.commit()
    db.close()


def test_an_edited_row_is_named(registry):
    registry.submit(subject="user-2", reason="first")
    rid = registry.submit(rows=[1], reason="second")
    seq = next(r["row"] for r in registry.requests() if r["id"] == rid)
    _sql(registry, "UPDATE rows SET body = replace(body, 'second', 'edited') WHERE seq = ?", seq)
    assert any(f"row {seq} (request) was edited" in p for p in registry.verify())


def test_a_deleted_or_reordered_row_is_named(registry):
    rids = [registry.submit(rows=[r]) for r in (1, 2, 3)]
    ids = [next(r["row"] for r in registry.requests() if r["id"] == i) for i in rids]
    _sql(registry, "DELETE FROM rows WHERE seq = ?", ids[1])
    problems = registry.verify()
    assert any(f"row {ids[1]} is missing" in p for p in problems)
    assert any(f"row {ids[2]} does not follow" in p for p in problems)


def test_rows_cut_from_the_end_below_a_receipts_anchor_are_detected(registry):
    anchor = json.loads((registry.current() / RECEIPT).read_text())
    _sql(registry, "DELETE FROM rows WHERE seq >= ?", anchor["rows"])  # the chain alone still looks whole
    assert registry.ledger.problems() == []
    assert any("which the ledger no longer has" in p for p in registry.verify())


def test_a_model_file_changed_by_one_byte_or_a_deleted_version_folder_is_named(registry):
    weights = registry.current() / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert any("v0000/model.safetensors does not match its recorded hash" in p for p in registry.verify())
    import shutil

    shutil.rmtree(registry.current())
    assert any("version 0: its folder versions/v0000 is missing" in p for p in registry.verify())


def test_a_path_in_the_ledger_outside_the_registry_is_refused(registry):
    registry.ledger.append("version", {"version": 1, "folder": "../../etc", "parent": 0, "requests": [], "files": {}})
    with pytest.raises(ParameterError, match="outside the registry"):
        registry.current()
    assert any("outside the registry" in p for p in registry.verify())


def test_two_processes_submitting_at_once_lose_nothing(registry):
    code = ("import sys\nfrom unlearnkit.running.ledger import Registry\n"
            "reg = Registry(sys.argv[1])\n"
            "for i in range(100):\n"
            "    reg.submit(rows=[int(sys.argv[2]) + i], reason=f'p{sys.argv[2]}-{i}')\n")  # fmt: skip
    procs = [subprocess.Popen([sys.executable, "-c", code, str(registry.folder), str(start)])
             for start in (0, 1000)]  # fmt: skip
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    reqs = registry.requests()
    assert len(reqs) == 200 and len({r["id"] for r in reqs}) == 200
    assert sorted(r["rows"][0] for r in reqs) == [*range(100), *range(1000, 1100)]
    assert registry.verify() == []


def test_subjects_csv(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("row,subject\n5,user-1\n9,user-1\n7,user-2\n")
    assert read_subjects_csv(p) == {"user-1": [5, 9], "user-2": [7]}
    p.write_text("5;user-1\n")
    with pytest.raises(ParameterError, match="line 1 must be 'row,subject'"):
        read_subjects_csv(p)


def test_the_ledger_refuses_an_unknown_row_kind(tmp_path):
    led = Ledger(tmp_path / "l.sqlite3", create=True)
    with pytest.raises(ParameterError, match="'kind' parameter must be one of"):
        led.append("note", {})
    assert led.head() == (0, "0" * 64)
    led.close()
    assert Path(tmp_path / "l.sqlite3").is_file()


def test_the_registry_commands_end_to_end(tmp_path, model_dir, capsys):
    csv = tmp_path / "subjects.csv"
    csv.write_text("row,subject\n5,user-1842\n9,user-1842\n7,user-2\n")
    reg = tmp_path / "prod"
    assert main(["registry", "init", str(reg), "--model", str(model_dir), "--subjects", str(csv)]) == 0
    assert "version 0" in capsys.readouterr().out
    assert main(["request", "submit", str(reg), "--subject", "user-1842", "--reason", "GDPR art. 17, ticket 5531"]) == 0
    rows = tmp_path / "delete_me.txt"
    rows.write_text("3\n4\n")
    assert main(["request", "submit", str(reg), "--indices", str(rows), "--reason", "support"]) == 0
    capsys.readouterr()
    assert main(["request", "list", str(reg), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["subject"], r["rows"], r["state"]) for r in listed] == [("user-1842", [5, 9], "pending"),
                                                                        (None, [3, 4], "pending")]  # fmt: skip
    assert main(["registry", "current", str(reg)]) == 0
    assert capsys.readouterr().out.strip().endswith("versions/v0000")
    assert main(["registry", "verify", str(reg)]) == 0 and "is intact" in capsys.readouterr().out
    _sql(Registry(reg), "UPDATE rows SET body = replace(body, 'support', 'other') WHERE kind = 'request'")
    assert main(["registry", "verify", str(reg)]) == 4
    assert "tampered: row" in capsys.readouterr().err
    assert main(["request", "submit", str(reg), "--subject", "nobody", "--reason", "x"]) == 2
    assert "must be a subject of the registry" in capsys.readouterr().err
    assert main(["registry", "verify", str(tmp_path / "nothing")]) == 2


def _deletions(folder: Path) -> list[list[int]]:
    return [d["forget_positions"] for d in json.loads((folder / "model.json").read_text())["deletions"]]


def test_apply_honours_every_pending_request_once_and_each_version_keeps_earlier_deletions(tmp_path, model_dir, capsys):
    reg = tmp_path / "prod"
    csv = tmp_path / "s.csv"
    csv.write_text("row,subject\n5,user-1\n9,user-1\n")
    assert main(["registry", "init", str(reg), "--model", str(model_dir), "--subjects", str(csv)]) == 0
    assert main(["request", "submit", str(reg), "--subject", "user-1", "--reason", "GDPR"]) == 0
    assert main(["request", "apply", str(reg), "--method", "finetune", "--set", "epochs=1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "version 1 (versions/v0001): honours request(s)" in out and "receipt: ledger row" in out
    rows = tmp_path / "rows.txt"
    rows.write_text("11\n12\n9\n")  # 9 is already forgotten by version 1
    assert main(["request", "submit", str(reg), "--indices", str(rows), "--reason", "ticket"]) == 0
    assert main(["request", "submit", str(reg), "--subject", "user-1", "--reason", "again"]) == 0
    assert "already_honoured" in capsys.readouterr().out
    assert main(["request", "apply", str(reg), "--method", "finetune", "--set", "epochs=1"]) == 0
    r = Registry(reg)
    assert r.current().name == "v0002" and r.verify() == [] and r.pending() == []
    v1, v2 = _deletions(reg / "versions" / "v0001"), _deletions(reg / "versions" / "v0002")
    assert len(v1) == 1 and len(v2) == 2 and v2[0] == v1[0]  # request 2's version keeps request 1's deletion
    assert len(v2[1]) == 2  # rows 11 and 12: row 9 was not forgotten twice
    states = [x["state"] for x in r.requests()]
    assert states == ["applied", "applied", "already_honoured"]
    assert main(["request", "apply", str(reg), "--method", "finetune"]) == 0
    assert "no pending request" in capsys.readouterr().out


def test_what_an_interrupted_apply_left_is_cleaned_and_the_rerun_applies_once(registry, model_dir):
    import shutil

    rid = registry.submit(rows=[4, 8])
    root = registry.folder / "versions"
    shutil.copytree(model_dir, root / ".v0001-apply")  # killed while writing the new model
    shutil.copytree(model_dir, root / "v0001")  # ... or after the rename, before the ledger commit
    calls = []

    def unlearn(parent, rows, out):  # a stand-in for `unlearnkit unlearn`: copies the parent
        calls.append(rows)
        shutil.copytree(parent, out, ignore=shutil.ignore_patterns("receipt.json"))
        return {"seconds": 0.0}

    made = registry.apply(unlearn, method="copy")
    assert calls == [[4, 8]] and [v["version"] for v in made] == [1] and not (root / ".v0001-apply").exists()
    assert registry.verify() == [] and [r["state"] for r in registry.requests() if r["id"] == rid] == ["applied"]
    (root / "v0001" / RECEIPT).unlink()  # killed after the commit, before the receipt
    assert registry.clean() == ["wrote the missing receipt of v0001"] and registry.verify() == []
    assert registry.apply(unlearn, method="copy") == [] and calls == [[4, 8]]  # nothing applied twice


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["before_write", "after_write", "after_rename", "in_transaction", "after_commit"])
def test_apply_killed_at_each_stage_leaves_the_previous_version_and_a_rerun_applies_once(tmp_path, model_dir, stage):
    import os

    from unlearnkit.running.ledger import KILL_AT

    reg = tmp_path / "prod"
    Registry.init(reg, model_dir, dataset_rows=N_ROWS).close()
    r = Registry(reg)
    ids = [r.submit(rows=[3, 4], reason="a"), r.submit(rows=[10], reason="b")]
    r.close()
    cmd = [sys.executable, "-m", "unlearnkit", "request", "apply", str(reg), "--method", "finetune",
           "--set", "epochs=1"]  # fmt: skip
    killed = subprocess.run(cmd, env={**os.environ, KILL_AT: stage}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr  # a real SIGKILL at that stage
    after = Registry(reg)
    if stage == "after_commit":  # the version is recorded; only its receipt is missing
        assert after.current().name == "v0001" and [q["state"] for q in after.requests()] == ["applied"] * 2
    else:  # the previous version is still current and the requests are pending
        assert after.current().name == "v0000" and [q["id"] for q in after.pending()] == ids
    after.close()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    final = Registry(reg)
    assert final.verify() == [] and final.current().name == "v0001"
    assert sorted(p.name for p in (reg / "versions").iterdir()) == ["v0000", "v0001"]  # nothing partial left
    assert [q["state"] for q in final.requests()] == ["applied", "applied"]
    assert [v["version"] for v in final.versions()] == [0, 1]  # applied exactly once


def test_request_show_gives_the_evidence_without_a_retrained_reference(tmp_path, model_dir, capsys):
    from test_bench import _chromium

    reg = tmp_path / "prod"
    assert main(["registry", "init", str(reg), "--model", str(model_dir)]) == 0
    trained = json.loads((model_dir / "training_rows.json").read_text())["rows"]
    rows = tmp_path / "rows.txt"
    rows.write_text("\n".join(str(r) for r in trained[:100]) + "\n")
    assert main(["request", "submit", str(reg), "--indices", str(rows), "--reason", "GDPR art. 17"]) == 0
    apply = ["request", "apply", str(reg), "--method", "neggrad", "--set", "epochs=3", "--reference", "retrain"]
    assert main(apply) == 0
    capsys.readouterr()
    page = tmp_path / "audit.html"
    assert main(["request", "show", str(reg), "1", "--html", str(page)]) == 0
    text = capsys.readouterr().out
    assert "honoured by version 1" in text and "forgotten vs never-seen by loss: AUC" in text
    assert "against retraining on what remains (100 samples deleted so far): Avg. Gap" in text
    capsys.readouterr()
    assert main(["request", "show", str(reg), "1", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    ev = rec["evidence"]
    assert ev["version"] == 1 and ev["before"]["n_forget"] == ev["rows"] == 100
    ref = ev["reference"]
    assert ref["deleted"] == 100 and ref["retrain_seconds"] > 0 and ref["avg_gap"] >= 0
    four = {"forget_accuracy", "retain_accuracy", "test_accuracy", "mia_accuracy"}
    assert ref["retrained"]["forget_accuracy"] < 1.0 and set(ref["gap"]) == four
    for when in ("before", "after"):
        for kind in ("loss", "entropy"):
            assert 0.5 <= ev[when][kind]["auc"] <= 1.0 and 0.0 <= ev[when][kind]["ks"] <= 1.0
    assert main(["request", "show", str(reg), "99"]) == 2
    held_out = sorted(set(range(N_ROWS)) - set(trained))[:3]  # rows the model never trained on
    r = Registry(reg)
    rid = r.submit(rows=held_out, reason="never seen")
    assert r.apply(lambda *a: pytest.fail("nothing to unlearn"), method="x") == []
    assert [q["state"] for q in r.requests() if q["id"] == rid] == ["never_trained_on"]
    browser = _chromium()
    try:
        browser.get(page.as_uri())
        assert browser.title == "Deletion request 1"
        assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
        bars = browser.execute_script(
            "return Array.from(document.querySelectorAll('figure svg')).map(e => {"
            "const r = e.getBoundingClientRect(); return [r.width, r.height,"
            " Array.from(e.querySelectorAll('[id^=series-]')).length]; })"
        )
    finally:
        browser.quit()
    assert len(bars) == 2 and all(w > 100 and h > 100 and n > 0 for w, h, n in bars)


def test_forgotten_vs_unseen_is_chance_on_one_distribution_and_high_on_separated_ones():
    import torch

    from unlearnkit.evaluation.evidence import forgotten_vs_unseen
    from unlearnkit.evaluation.outputs import Outputs

    g = torch.Generator().manual_seed(0)
    a = Outputs(torch.randn(400, 3, generator=g), torch.zeros(400, dtype=torch.long))
    b = Outputs(torch.randn(400, 3, generator=g), torch.zeros(400, dtype=torch.long))
    same = forgotten_vs_unseen(a, b)
    assert same["loss"]["auc"] < 0.56 and same["loss"]["p_value"] > 0.01
    sure = Outputs(torch.tensor([[9.0, 0.0, 0.0]]).repeat(400, 1), torch.zeros(400, dtype=torch.long))
    far = forgotten_vs_unseen(sure, b)
    assert far["loss"]["auc"] > 0.99 and far["entropy"]["ks"] > 0.9


def test_references_trained_at_init_give_rmia_evidence_and_are_verified(tmp_path, model_dir, capsys):
    reg = tmp_path / "prod"
    assert main(["registry", "init", str(reg), "--model", str(model_dir), "--references", "3"]) == 2
    assert "even int >= 2" in capsys.readouterr().err and not reg.exists()
    assert main(["registry", "init", str(reg), "--model", str(model_dir), "--references", "2"]) == 0
    assert "2 reference models" in capsys.readouterr().out
    r = Registry(reg)
    refs = r.references()
    trained = json.loads((model_dir / "training_rows.json").read_text())["rows"]
    assert len(refs) == 2 and not refs[0]["rows"] & refs[1]["rows"]  # complementary halves
    assert refs[0]["rows"] | refs[1]["rows"] == set(trained)
    for ref in refs:  # the rows the ledger's reference saw are the rows it was trained on
        assert set(json.loads((ref["folder"] / "training_rows.json").read_text())["rows"]) == ref["rows"]
    assert r.verify() == []
    rows = tmp_path / "rows.txt"
    rows.write_text("\n".join(str(x) for x in trained[:100]) + "\n")
    assert main(["request", "submit", str(reg), "--indices", str(rows), "--reason", "GDPR art. 17"]) == 0
    assert main(["request", "apply", str(reg), "--method", "neggrad", "--set", "epochs=3"]) == 0
    capsys.readouterr()
    page = tmp_path / "audit.html"
    assert main(["request", "show", str(reg), "1", "--html", str(page)]) == 0
    assert "RMIA (2 reference models): forgotten vs never-seen AUC" in capsys.readouterr().out
    assert "RMIA against 2 reference models" in page.read_text()
    assert main(["request", "show", str(reg), "1", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)["evidence"]["rmia"]
    for when in ("before", "after"):
        res = ev[when]
        assert res["references"] == 2 and res["n"]["forget"] == 100 and res["n"]["members"] == 1000
        assert res["references_out_per_sample"] == 1.0  # complementary halves: one reference never saw each row
        assert 0.0 <= res["auc"] <= 1.0 and 0.0 <= res["members_auc"] <= 1.0
    weights = sorted((reg / "references" / "r001").glob("*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert any(f"references/r001/{weights.name} does not match its recorded hash" in p for p in Registry(reg).verify())
    assert main(["registry", "verify", str(reg)]) == 4
