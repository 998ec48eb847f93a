"""The deletion-request ledger: an append-only, hash-chained record of what a deployed model has honoured.

A registry is one folder: ``ledger.sqlite3`` (the standard library's
``sqlite3``, WAL mode, every write one ``BEGIN IMMEDIATE`` transaction) and
``versions/vNNNN/`` (every model version, never overwritten). The ledger has a
single append-only table of rows ``(seq, kind, at, body, prev, hash)``:

* ``init`` — where the model and its training data come from;
* ``subjects`` — subject id → dataset rows (from the CSV given at ``init``);
* ``request`` — id, a subject or dataset rows, the reason;
* ``state`` — a request's change of state (``already_honoured``, ``applied``…): a
  request is never edited, a state change is a new row;
* ``version`` — a model version: its folder, parent, the requests it honours,
  the content hash of its files;
* ``references`` — reference models trained at ``init`` on random halves of the
  training data (``references/rNNN/``, each with the dataset rows it saw in
  ``rows.json``), for RMIA on any later request without a retrained model;
* ``evidence`` — what was measured about a version when it was made.

Each row's ``hash`` is SHA-256 of the previous row's hash and the row's own
canonical JSON, so :meth:`Registry.verify` detects an edited, deleted or
reordered row. A chain alone cannot see its last rows deleted or the whole
chain recomputed, so every version's folder holds a ``receipt.json`` with the
chain's row count and head hash at that moment (its anchor), which ``verify``
checks against the chain, together with every version's file hashes.
Nothing is unpickled; paths read from the ledger are checked to stay inside
the registry folder.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnkit.errors import ParameterError
from unlearnkit.files import file_sha256, write_json_atomic

#: Test hook: a process with this variable set to a stage name of ``Registry.apply`` kills itself (SIGKILL)
#: there, so the crash tests can stop a real apply at every stage.
KILL_AT = "UNLEARNKIT_TEST_KILL_AT"
LEDGER = "ledger.sqlite3"
VERSIONS = "versions"
REFERENCES = "references"
REFERENCE_ROWS = "rows.json"
RECEIPT = "receipt.json"
GENESIS = "0" * 64
KINDS = ("init", "subjects", "request", "state", "version", "evidence", "references")


def canonical(obj: Any) -> str:
    """The canonical JSON a row is hashed over: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def row_hash(prev: str, seq: int, kind: str, at: str, body: Any) -> str:
    text = prev + "\n" + canonical({"seq": seq, "kind": kind, "at": at, "body": body})
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Row:
    seq: int
    kind: str
    at: str
    body: Any
    prev: str
    hash: str


def _checkpoint(stage: str) -> None:
    if os.environ.get(KILL_AT) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


class Ledger:
    """The hash-chained table (see the module docstring); one connection per instance."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ParameterError(f"The 'ledger' file {str(self.path)!r} does not exist.")
        self.db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=60000")
        if create:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TEXT NOT NULL, "
                "body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)"
            )

    def close(self) -> None:
        self.db.close()

    def append(self, kind: str, body: Any) -> Row:
        """Append one row in its own transaction (two processes appending at once never share a seq)."""
        return self.append_many([(kind, body)])[0]

    def append_many(self, items: Iterable[tuple[str, Any]]) -> list[Row]:
        """Append rows in one transaction: all of them or none."""
        out = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            last = self.db.execute("SELECT seq, hash FROM rows ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0], last[1]) if last else (0, GENESIS)
            requests = None
            for kind, body in items:
                _checkpoint("in_transaction")
                if kind not in KINDS:
                    raise ParameterError(f"The 'kind' parameter must be one of {', '.join(KINDS)}; got {kind!r}.")
                if kind == "request":  # numbered 1, 2, ... inside the transaction: unique under concurrent submits
                    if requests is None:
                        count = self.db.execute("SELECT COUNT(*) FROM rows WHERE kind = 'request'").fetchone()
                        requests = int(count[0])
                    requests += 1
                    body = {**body, "id": requests}
                seq, at = seq + 1, _now()
                h = row_hash(prev, seq, kind, at, body)
                self.db.execute("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)", (seq, kind, at, canonical(body), prev, h))
                out.append(Row(seq, kind, at, body, prev, h))
                prev = h
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return out

    def rows(self) -> list[Row]:
        cur = self.db.execute("SELECT seq, kind, at, body, prev, hash FROM rows ORDER BY seq")
        return [Row(s, k, a, json.loads(b), p, h) for s, k, a, b, p, h in cur.fetchall()]

    def head(self) -> tuple[int, str]:
        """(row count, hash of the last row): the anchor a receipt records."""
        last = self.db.execute("SELECT seq, hash FROM rows ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(last[0]), str(last[1])) if last else (0, GENESIS)

    def problems(self) -> list[str]:
        """Every break in the chain, each naming its row: an edited, deleted, inserted or reordered row."""
        out = []
        prev = GENESIS
        cur = self.db.execute("SELECT seq, kind, at, body, prev, hash FROM rows ORDER BY seq")
        expected = 1
        for seq, kind, at, body, stored_prev, h in cur.fetchall():
            if seq != expected:
                out.append(f"row {expected}" + (f"–{seq - 1}" if seq - 1 > expected else "") + " is missing")
            if stored_prev != prev:
                out.append(f"row {seq} does not follow the row before it (deleted or reordered rows)")
            try:
                ok = row_hash(stored_prev, seq, kind, at, json.loads(body)) == h
            except ValueError:
                ok = False
            if not ok:
                out.append(f"row {seq} ({kind}) was edited: its hash does not match its content")
            prev, expected = h, seq + 1
        return out


class Registry:
    """A registry folder: the ledger plus every model version (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / LEDGER).is_file():
            raise ParameterError(
                f"The 'registry' parameter must be a folder made by unlearnkit registry init (with {LEDGER}); "
                f"got {str(self.folder)!r}."
            )
        self.ledger = Ledger(self.folder / LEDGER)
        rows = self.ledger.rows()
        if not rows or rows[0].kind != "init":
            raise ParameterError(f"The registry {str(self.folder)!r} has no init row; its ledger is not a registry's.")
        self.info: dict[str, Any] = rows[0].body

    # -- creation -------------------------------------------------------------------
    @classmethod
    def init(cls, folder: str | Path, model: str | Path, *, dataset_rows: int,
             subjects: Mapping[str, Sequence[int]] | None = None,
             data: Mapping[str, Any] | None = None,
             references: Sequence[tuple[str | Path, Sequence[int]]] | None = None) -> Registry:  # fmt: skip
        """Make a registry: copy ``model`` (a saved model folder) in as version 0 and record where the data is.

        Args:
            dataset_rows: Rows of the dataset the model was trained from (requests name rows in [0, this)).
            subjects: Subject id → its dataset rows (e.g. from a CSV ``row,subject``).
            data: Where the training data comes from (a bundled dataset's name, or the user's tensor file).
            references: Reference models for RMIA (:func:`train_references` makes them): pairs of a saved
                model folder and the dataset rows it was trained on, copied in as ``references/rNNN``.
        """
        folder, model = Path(folder), Path(model)
        check_new_registry(folder)
        if not model.is_dir():
            raise ParameterError(f"The 'model' parameter must be a saved model folder; got {str(model)!r}.")
        if isinstance(dataset_rows, bool) or not isinstance(dataset_rows, int) or dataset_rows < 1:
            raise ParameterError(f"The 'dataset_rows' parameter must be an int >= 1; got {dataset_rows!r}.")
        clean = _check_subjects(subjects or {}, dataset_rows)
        refs = []
        for i, (ref, seen) in enumerate(references or ()):
            if not Path(ref).is_dir():
                raise ParameterError(f"The 'references[{i}]' model must be a saved model folder; got {str(ref)!r}.")
            refs.append((Path(ref), _check_rows(seen, dataset_rows, param=f"references[{i}] rows")))
        folder.mkdir(parents=True, exist_ok=True)
        version = _copy_version(model, folder, 0)
        copied = [_copy_folder(ref, folder / REFERENCES / f"r{i:03d}", {REFERENCE_ROWS: {"rows": seen}})
                  for i, (ref, seen) in enumerate(refs)]  # fmt: skip
        ledger = Ledger(folder / LEDGER, create=True)
        try:
            rows = [("init", {"model_source": str(model), "data": dict(data or {}), "dataset_rows": dataset_rows,
                              "format": "unlearnkit-registry", "format_version": 1})]  # fmt: skip
            if clean:
                rows.append(("subjects", {"subjects": clean}))
            if copied:
                rows.append(("references", {"references": [
                    {"folder": f"{REFERENCES}/{c.name}", "rows": len(r), "files": _hashes(c)}
                    for c, (_, r) in zip(copied, refs, strict=True)]}))  # fmt: skip
            rows.append(("version", {"version": 0, "folder": f"{VERSIONS}/v0000", "parent": None, "requests": [],
                                     "files": _hashes(version)}))  # fmt: skip
            ledger.append_many(rows)
            _write_receipt(version, ledger)
        finally:
            ledger.close()
        return cls(folder)

    # -- requests -------------------------------------------------------------------
    def subjects(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for r in self.ledger.rows():
            if r.kind == "subjects":
                out.update({k: list(v) for k, v in r.body["subjects"].items()})
        return out

    def submit(self, *, subject: str | None = None, rows: Sequence[int] | None = None, reason: str = "") -> int:
        """Record a deletion request (by subject id or by dataset rows); returns its id.

        A request whose rows were all honoured by an earlier version is recorded and marked
        ``already_honoured`` at once: it is never applied twice.
        """
        if (subject is None) == (rows is None):
            raise ParameterError("A request names exactly one of 'subject' or 'rows'; got "
                                 + ("both." if subject is not None else "neither."))  # fmt: skip
        if subject is not None:
            known = self.subjects()
            if subject not in known:
                raise ParameterError(f"The 'subject' parameter must be a subject of the registry; got {subject!r}.")
            wanted = sorted(set(known[subject]))
        else:
            wanted = _check_rows(rows or [], self.info["dataset_rows"], param="rows")
        if not wanted:
            raise ParameterError("The request names no dataset row; an empty request changes nothing.")
        done = set(self.honoured_rows())
        body = {"subject": subject, "rows": wanted, "reason": str(reason)}
        row = self.ledger.append("request", body)  # the ledger numbers it, inside the append's transaction
        rid = int(row.body["id"])
        if set(wanted) <= done:
            self.ledger.append("state", {"request": rid, "state": "already_honoured"})
        return rid

    def requests(self) -> list[dict[str, Any]]:
        """Every request with its current state (``pending`` until a state row says otherwise)."""
        reqs: dict[int, dict[str, Any]] = {}
        for r in self.ledger.rows():
            if r.kind == "request":
                reqs[r.body["id"]] = {"submitted_at": r.at, "row": r.seq, **r.body, "state": "pending"}
            elif r.kind == "state" and r.body["request"] in reqs:
                extra = {k: v for k, v in r.body.items() if k not in ("request", "state")}
                reqs[r.body["request"]].update(state=r.body["state"], state_at=r.at, **extra)
        return list(reqs.values())

    def pending(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["state"] == "pending"]

    def trained_rows(self) -> set[int] | None:
        """Dataset rows version 0 was trained on (its ``training_rows.json``); None when the model has no such file."""
        path = self.folder / VERSIONS / "v0000" / "training_rows.json"
        if not path.is_file():
            return None
        return {int(r) for r in json.loads(path.read_text())["rows"]}

    def honoured_rows(self) -> list[int]:
        """Dataset rows some version has already forgotten."""
        out: set[int] = set()
        for r in self.requests():
            if r["state"] == "applied":
                out.update(r["rows"])
        return sorted(out)

    def references(self) -> list[dict[str, Any]]:
        """The reference models recorded at ``init``: ``folder`` (inside the registry) and the ``rows`` each saw."""
        out = []
        for r in self.ledger.rows():
            if r.kind == "references":
                for ref in r.body["references"]:
                    path = self._inside(ref["folder"])
                    seen = json.loads((path / REFERENCE_ROWS).read_text())["rows"]
                    out.append({"folder": path, "rows": {int(x) for x in seen}})
        return out

    # -- versions -------------------------------------------------------------------
    def versions(self) -> list[dict[str, Any]]:
        return [r.body | {"recorded_at": r.at, "seq": r.seq} for r in self.ledger.rows() if r.kind == "version"]

    def current(self) -> Path:
        """The folder of the model to serve now: the last recorded version."""
        return self._inside(self.versions()[-1]["folder"])

    def _inside(self, relative: str) -> Path:
        """A path from the ledger, refused if it leaves the registry folder."""
        path = (self.folder / relative).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            raise ParameterError(f"The ledger names a path outside the registry: {relative!r}.")
        return path

    # -- applying requests ----------------------------------------------------------------
    def clean(self) -> list[str]:
        """Undo what an interrupted ``apply`` left: returns what it removed or repaired.

        * a temporary ``versions/.vNNNN-*`` folder (killed while the new model was written) is removed;
        * a ``versions/vNNNN`` folder the ledger does not record and that has no receipt (killed after the
          folder was renamed into place, before the ledger transaction committed) is removed — a folder
          that has a receipt is never removed: its rows were taken out of the ledger, and ``verify`` says so;
        * a recorded version without its receipt (killed after the commit) gets one.
        """
        done = []
        root = self.folder / VERSIONS
        for tmp in sorted(root.glob(".v*")):
            shutil.rmtree(tmp, ignore_errors=True)
            done.append(f"removed the unfinished {tmp.name}")
        recorded = {self._inside(v["folder"]): v for v in self.versions() if _safe(self, v["folder"])}
        for folder in sorted(p for p in root.glob("v*") if p.is_dir()):
            if folder.resolve() not in recorded and not (folder / RECEIPT).exists():
                shutil.rmtree(folder)
                done.append(f"removed {folder.name}, written but never recorded")
        for folder in recorded:
            if folder.is_dir() and not (folder / RECEIPT).exists():
                _write_receipt(folder, self.ledger)
                done.append(f"wrote the missing receipt of {folder.name}")
        return done

    def apply(self, unlearn: Callable[[Path, list[int], Path], Mapping[str, Any]], *, method: str,
              settings: Mapping[str, Any] | None = None, seed: int = 0, one_by_one: bool = False,
              evidence: Callable[[Path, Path, list[int]], Mapping[str, Any]] | None = None,
              ) -> list[dict[str, Any]]:  # fmt: skip
        """Honour every pending request, in order, in a new model version (or one version per request).

        Only rows the model was trained on are unlearned (a request's rows in the holdout or test split were
        never learned: a request with only such rows ends ``never_trained_on``).
        ``unlearn(parent_folder, dataset_rows, out_folder)`` writes the new model into ``out_folder`` (a
        folder that does not exist yet) and returns facts about the run (e.g. ``seconds``); the CLI passes
        ``unlearnkit unlearn``. The new folder is written under a temporary name, renamed into place, and
        only then recorded — its version row and the requests' ``applied`` states in one transaction —
        and given its receipt, so a crash at any point leaves the previous version current and the
        requests pending (:meth:`clean`, run first, removes what was left).

        ``evidence(parent_folder, new_folder, rows)``, when given, measures the new version (e.g. forgotten
        vs never-seen samples, utility against the parent); it is recorded in the same transaction.

        Returns one dict per new version: its number, folder, requests, rows, evidence and receipt.
        """
        self.clean()
        pending = self.pending()
        groups = [[r] for r in pending] if one_by_one else ([pending] if pending else [])
        made = []
        for group in groups:
            honoured = set(self.honoured_rows())
            ids = [r["id"] for r in group]
            wanted = {x for r in group for x in r["rows"]}
            trained = self.trained_rows()
            rows = sorted((wanted if trained is None else wanted & trained) - honoured)
            if not rows:  # honoured by an earlier version of this same apply, or never trained on
                state = "already_honoured" if trained is None or wanted & trained else "never_trained_on"
                self.ledger.append_many([("state", {"request": i, "state": state}) for i in ids])
                continue
            parent = self.versions()[-1]
            number = int(parent["version"]) + 1
            tmp = self.folder / VERSIONS / f".v{number:04d}-apply"
            _checkpoint("before_write")
            facts = dict(unlearn(self.current(), rows, tmp))
            _checkpoint("after_write")
            target = self.folder / VERSIONS / f"v{number:04d}"
            tmp.rename(target)
            _checkpoint("after_rename")
            measured = dict(evidence(self.current(), target, rows)) if evidence is not None else None
            body = {"version": number, "folder": f"{VERSIONS}/{target.name}", "parent": parent["version"],
                    "requests": ids, "rows": rows, "method": method, "settings": dict(settings or {}), "seed": seed,
                    "seconds": facts.get("seconds"), "files": _hashes(target)}  # fmt: skip
            extra = [("evidence", {"version": number, **measured})] if measured is not None else []
            self.ledger.append_many([("version", body), *extra,
                                     *(("state", {"request": i, "state": "applied", "version": number})
                                       for i in ids)])  # fmt: skip
            _checkpoint("after_commit")
            _write_receipt(target, self.ledger)
            made.append({**body, "evidence": measured, "receipt": json.loads((target / RECEIPT).read_text())})
        return made

    def show(self, request_id: int) -> dict[str, Any]:
        """Everything recorded about one request: the request, the version that honours it, its evidence."""
        req = next((r for r in self.requests() if r["id"] == request_id), None)
        if req is None:
            raise ParameterError(f"The 'request' parameter must be a request id of the registry; got {request_id!r}.")
        version = next((v for v in self.versions() if request_id in v.get("requests", [])), None)
        evidence = None
        if version is not None:
            evidence = next((r.body for r in self.ledger.rows()
                             if r.kind == "evidence" and r.body["version"] == version["version"]), None)  # fmt: skip
        return {"request": req, "version": version, "evidence": evidence}

    def verify(self) -> list[str]:
        """Everything wrong with the registry (empty: intact): the chain, every version's files, every anchor."""
        out = self.ledger.problems()
        rows = self.ledger.rows()
        by_seq = {r.seq: r for r in rows}
        for v in self.versions():
            try:
                folder = self._inside(v["folder"])
            except ParameterError as exc:
                out.append(str(exc))
                continue
            if not folder.is_dir():
                out.append(f"version {v['version']}: its folder {v['folder']} is missing")
                continue
            out += _file_problems(folder, v["files"], f"version {v['version']}: {v['folder']}")
            if not (folder / RECEIPT).is_file():
                out.append(f"version {v['version']}: its receipt {v['folder']}/{RECEIPT} is missing")
        for r in rows:
            for ref in r.body.get("references", []) if r.kind == "references" else []:
                try:
                    rfolder = self._inside(ref["folder"])
                except ParameterError as exc:
                    out.append(str(exc))
                    continue
                out += _file_problems(rfolder, ref["files"], f"reference {ref['folder']}")
        recorded = {self._inside(v["folder"]) for v in self.versions() if _safe(self, v["folder"])}
        for receipt in sorted((self.folder / VERSIONS).glob(f"v*/{RECEIPT}")):
            # every version folder on disk, recorded or not: a receipt outlives its ledger rows
            label = receipt.parent.name
            if receipt.parent.resolve() not in recorded:
                out.append(f"{VERSIONS}/{label} is not recorded in the ledger (its version row was deleted)")
            anchor = json.loads(receipt.read_text())
            row = by_seq.get(int(anchor["rows"]))
            if row is None:
                out.append(f"{VERSIONS}/{label}: its receipt anchors row {anchor['rows']}, which the ledger no "
                           f"longer has (rows were deleted; the ledger has {len(rows)})")  # fmt: skip
            elif row.hash != anchor["head"]:
                out.append(f"{VERSIONS}/{label}: its receipt's head hash does not match row {anchor['rows']} "
                           "(the chain was rewritten)")  # fmt: skip
        return out

    def close(self) -> None:
        self.ledger.close()


def check_new_registry(folder: str | Path) -> None:
    """Refuse (one line) a folder that already holds a registry: ``init`` never overwrites one."""
    if (Path(folder) / LEDGER).exists():
        raise ParameterError(f"The 'registry' folder {str(folder)!r} already holds a registry; choose a new one.")


def _safe(reg: Registry, relative: str) -> bool:
    try:
        reg._inside(relative)
    except ParameterError:
        return False
    return True


def _check_rows(rows: Iterable[Any], n: int, *, param: str) -> list[int]:
    out = []
    for v in rows:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise ParameterError(f"The {param!r} parameter must hold dataset rows in [0, {n}); got {v!r}.")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ParameterError(f"The {param!r} parameter must not repeat a row.")
    return sorted(out)


def _check_subjects(subjects: Mapping[str, Sequence[int]], n: int) -> dict[str, list[int]]:
    clean: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for sid, rows in subjects.items():
        if not isinstance(sid, str) or not sid:
            raise ParameterError(f"The 'subjects' ids must be non-empty strings; got {sid!r}.")
        clean[sid] = _check_rows(rows, n, param=f"subjects[{sid!r}]")
        for r in clean[sid]:
            if r in owner:
                raise ParameterError(f"The 'subjects' map gives dataset row {r} to both {owner[r]!r} and {sid!r}.")
            owner[r] = sid
    return clean


def read_subjects_csv(path: str | Path) -> dict[str, list[int]]:
    """A ``row,subject`` CSV (header optional) as subject id → dataset rows."""
    import csv

    out: dict[str, list[int]] = {}
    with open(path, newline="") as f:
        for i, rec in enumerate(csv.reader(f)):
            if not rec or (i == 0 and rec[0].strip().lower() == "row"):
                continue
            if len(rec) != 2 or not rec[0].strip().lstrip("-").isdigit():
                raise ParameterError(
                    f"The '--subjects' file {str(path)!r} line {i + 1} must be 'row,subject'; got {rec!r}."
                )
            out.setdefault(rec[1].strip(), []).append(int(rec[0]))
    return out


def _file_problems(folder: Path, files: Mapping[str, str], label: str) -> list[str]:
    """One line per recorded file that is missing from ``folder`` or whose SHA-256 no longer matches."""
    out = []
    for name, digest in files.items():
        f = folder / name
        if not f.is_file():
            out.append(f"{label}/{name} is missing")
        elif file_sha256(f) != digest:
            out.append(f"{label}/{name} does not match its recorded hash")
    return out


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != RECEIPT}


def _copy_version(model: Path, registry: Path, version: int) -> Path:
    """Copy a model folder into ``versions/vNNNN`` atomically (a temporary folder, then one rename)."""
    return _copy_folder(model, registry / VERSIONS / f"v{version:04d}")


def _copy_folder(model: Path, target: Path, extra_json: Mapping[str, Any] | None = None) -> Path:
    """Copy a model folder's plain files (plus ``extra_json`` files) to ``target``: a temporary folder, one rename."""
    if target.exists():
        raise ParameterError(f"The folder {str(target)!r} already exists.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for p in sorted(model.iterdir()):
            if p.is_file() and not p.is_symlink():
                shutil.copy2(p, tmp / p.name)
        for name, body in (extra_json or {}).items():
            write_json_atomic(tmp / name, body)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _write_receipt(folder: Path, ledger: Ledger) -> None:
    rows, head = ledger.head()
    write_json_atomic(folder / RECEIPT, {"rows": rows, "head": head, "written_at": _now()})


def train_references(model: str | Path, train: Any, k: int, *, out: str | Path, seed: int = 0,
                     device: str = "cpu", progress: bool = False) -> list[tuple[Path, list[int]]]:  # fmt: skip
    """Train ``k`` reference models for RMIA on complementary random halves of ``train``.

    Pair ``j`` splits the training view by a permutation seeded from ``seed`` and ``j``; reference
    ``2j`` trains on the first half, ``2j + 1`` on the second, each from its own initialisation with
    the saved model's architecture and recipe. Every training row is therefore unseen by exactly
    ``k / 2`` references — whatever a later request names, RMIA has references that never saw it.

    Args:
        model: The saved model folder (version 0): its sidecar gives the architecture and recipe.
        train: Its training view (``View``; ``indices`` are the dataset rows).
        k: An even number >= 2.
        out: A new folder; reference ``i`` is written to ``out/rNNN`` (safetensors and sidecar,
            with its dataset rows in ``training_rows.json``).

    Returns:
        ``(folder, dataset rows)`` per reference, as :meth:`Registry.init` takes them.
    """
    import torch

    from unlearnkit.core.artifacts import read_metadata, save_model
    from unlearnkit.core.models import build_model
    from unlearnkit.core.training import TrainConfig, fit

    if isinstance(k, bool) or not isinstance(k, int) or k < 2 or k % 2:
        raise ParameterError(f"The 'references' parameter must be an even int >= 2 (complementary halves); got {k!r}.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ParameterError(f"The 'out' folder {str(out)!r} must be new or empty.")
    meta = read_metadata(model)
    arch, recipe = meta["architecture"], TrainConfig.from_dict(meta["training"])
    n = len(train)
    if n < 2:
        raise ParameterError(f"The 'train' view must hold at least 2 samples to halve; got {n}.")
    made = []
    for j in range(k // 2):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) * 1_000 + 7919 * (j + 1)))
        for half, pos in enumerate((perm[: n // 2], perm[n // 2 :])):
            i = 2 * j + half
            s = int(seed) * 1_000 + i + 1
            net = build_model(arch["name"], arch["input_shape"], arch["num_classes"], seed=s, **arch.get("kwargs", {}))
            part = train.subset(pos.sort().values)
            fit(net, part, recipe, seed=s, device=device, progress=progress, desc=f"reference {i + 1}/{k}")
            net.eval()
            rows = sorted(int(r) for r in part.indices.tolist())
            folder = save_model(net.cpu(), out / f"r{i:03d}", {**meta, "seed": s, "reference": {"index": i, "of": k}},
                                extra_json={"training_rows.json": {"rows": rows}})  # fmt: skip
            made.append((folder, rows))
    return made
