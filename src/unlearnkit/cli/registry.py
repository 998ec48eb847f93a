"""`unlearnkit registry` and `unlearnkit request`: the deletion-request ledger of a deployed model.

    unlearnkit registry init DIR --model runs/original [--subjects subjects.csv] [--references K]
    unlearnkit registry verify DIR          # exit 4 and one line per problem when anything was tampered with
    unlearnkit registry current DIR         # the folder of the model to serve now
    unlearnkit request submit DIR (--subject ID | --indices FILE) --reason TEXT
    unlearnkit request list DIR [--json]
    unlearnkit request apply DIR --method M [--set KEY=VALUE] [--seed S] [--one-by-one]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from unlearnkit.cli import common
from unlearnkit.errors import ParameterError

EXIT_TAMPERED = 4  # `registry verify`: the ledger or a model version does not match what was recorded


def add_registry(sub: Any) -> None:
    p = sub.add_parser("registry", help="a deployed model's registry: init, verify, current")
    cmds = p.add_subparsers(dest="registry_command", required=True, parser_class=common.Parser)
    init = cmds.add_parser("init", help="make a registry from a saved model (copied in as version 0)")
    init.add_argument("dir", help="new registry folder")
    init.add_argument("--model", required=True, help="saved model folder (unlearnkit train / unlearn)")
    init.add_argument("--subjects", default=None, help="CSV of 'row,subject': dataset rows of each data subject")
    init.add_argument("--references", type=int, default=0,
                      help="train K reference models (even K: complementary random halves of the training data) "
                           "for RMIA on every later version (default 0: none)")  # fmt: skip
    common.add_seed(init)
    common.add_runtime(init)
    for name, text in (("verify", "check the ledger's chain, every version's files and every receipt"),
                       ("current", "print the folder of the model to serve now")):  # fmt: skip
        c = cmds.add_parser(name, help=text)
        c.add_argument("dir", help="registry folder")


def add_request(sub: Any) -> None:
    p = sub.add_parser("request", help="deletion requests against a registry: submit, list")
    cmds = p.add_subparsers(dest="request_command", required=True, parser_class=common.Parser)
    s = cmds.add_parser("submit", help="record a deletion request (by subject or dataset rows)")
    s.add_argument("dir", help="registry folder")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--subject", default=None, help="a subject id of the registry's subjects CSV")
    g.add_argument("--indices", default=None, help="file of dataset rows to delete: one integer per line, or .npy")
    s.add_argument("--reason", required=True, help="why (e.g. 'GDPR art. 17, ticket 5531'): kept in the ledger")
    a = cmds.add_parser("apply", help="honour every pending request in a new model version (crash-safe)")
    a.add_argument("dir", help="registry folder")
    a.add_argument("--method", required=True, help="unlearning method (unlearnkit list methods)")
    common.add_settings(a, "--set", "KEY=VALUE", "method setting, e.g. --set epochs=3")
    common.add_seed(a)
    a.add_argument("--one-by-one", action="store_true", help="one version per request (default: one for all)")
    a.add_argument("--reference", choices=("none", "retrain"), default="none",
                   help="retrain: also retrain from version 0 on everything still remaining and compare (costly)")
    common.add_runtime(a)
    sh = cmds.add_parser("show", help="the evidence an auditor reads for one request")
    sh.add_argument("dir", help="registry folder")
    sh.add_argument("id", type=int, help="request id (request list)")
    sh.add_argument("--json", action="store_true", help="print the full record as JSON")
    sh.add_argument("--html", default=None, help="also write a self-contained HTML page there")
    ls = cmds.add_parser("list", help="every request with its state and dates")
    ls.add_argument("dir", help="registry folder")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")


def cmd_registry(args: argparse.Namespace) -> int:
    from unlearnkit.running.ledger import Registry, read_subjects_csv

    if args.registry_command == "init":
        import tempfile

        from unlearnkit.env import set_threads
        from unlearnkit.running.ledger import check_new_registry, train_references

        set_threads(args.threads)
        if isinstance(args.references, int) and args.references != 0 and (args.references < 2 or args.references % 2):
            raise ParameterError("The '--references' parameter must be 0 or an even int >= 2 (complementary "
                                 f"halves); got {args.references}.")  # fmt: skip
        check_new_registry(args.dir)  # before any training
        _model, meta, ds, split, _scenario = common.context_from_model(args.model, None)
        subjects = read_subjects_csv(args.subjects) if args.subjects else None
        data = {"dataset": meta["dataset"]["name"], "sha256": meta["dataset"].get("sha256")}
        Path(args.dir).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".references-", dir=Path(args.dir).parent) as tmp:
            refs = []
            if args.references:
                t0 = time.perf_counter()
                refs = train_references(args.model, split.train, args.references, out=Path(tmp) / "refs",
                                        seed=args.seed, device=args.device,
                                        progress=common.show_progress(args))  # fmt: skip
                common.say(f"trained {len(refs)} reference models in {time.perf_counter() - t0:.1f}s")
            reg = Registry.init(args.dir, args.model, dataset_rows=len(ds.train_y), subjects=subjects, data=data,
                                references=refs)  # fmt: skip
        print(f"registry {args.dir}: version 0 = {reg.current()} ({len(reg.subjects())} subjects, "
              f"{len(ds.train_y)} dataset rows, {len(reg.references())} reference models)")  # fmt: skip
        return common.EXIT_OK
    reg = Registry(args.dir)
    if args.registry_command == "current":
        print(reg.current())
        return common.EXIT_OK
    problems = reg.verify()
    if problems:
        for p in problems:
            common.say(f"tampered: {p}")
        return EXIT_TAMPERED
    rows, head = reg.ledger.head()
    print(f"registry {args.dir} is intact: {rows} ledger rows (head {head[:16]}), {len(reg.versions())} version(s)")
    return common.EXIT_OK


def cmd_request(args: argparse.Namespace) -> int:
    from unlearnkit.running.ledger import Registry

    reg = Registry(args.dir)
    if args.request_command == "apply":
        return _apply(reg, args)
    if args.request_command == "show":
        return _show(reg, args)
    if args.request_command == "submit":
        from unlearnkit.data.splits import read_integers

        rows = None
        if args.indices is not None:
            rows = [int(v) for v in read_integers(args.indices, param="--indices")]
        rid = reg.submit(subject=args.subject, rows=rows, reason=args.reason)
        state = next(r["state"] for r in reg.requests() if r["id"] == rid)
        print(f"request {rid}: {state}")
        return common.EXIT_OK
    reqs = reg.requests()
    if args.json:
        print(json.dumps(reqs, indent=1))
        return common.EXIT_OK
    print(f"{'id':>5}  {'state':<17} {'submitted at (UTC)':<27} {'rows':>6}  subject / reason")
    for r in reqs:
        print(f"{r['id']:>5}  {r['state']:<17} {r['submitted_at'][:26]:<27} {len(r['rows']):>6}  "
              f"{r['subject'] or '-'} / {r['reason']}")  # fmt: skip
    return common.EXIT_OK


def _apply(reg: Any, args: argparse.Namespace) -> int:
    """``request apply``: each new version is ``unlearnkit unlearn`` of the current one on the pending rows."""
    import tempfile

    from unlearnkit.cli.unlearn import add_unlearn, cmd_unlearn

    parser = common.Parser(prog="unlearnkit")
    add_unlearn(parser.add_subparsers(dest="command", parser_class=common.Parser))

    settings = common.parse_settings(args.set, qualified=False).get("", {})
    for note in reg.clean():
        common.say(f"registry: {note}")

    def unlearn(parent: Path, rows: list[int], out: Path) -> dict[str, Any]:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(map(str, rows)) + "\n")
        try:
            argv = ["unlearn", "--model", str(parent), "--method", args.method, "--forget-rows", f.name,
                    "--seed", str(args.seed), "--out", str(out), "--no-progress",
                    *(["--threads", str(args.threads)] if args.threads is not None else []),
                    *(x for k, v in settings.items() for x in ("--set", f"{k}={json.dumps(v)}"))]  # fmt: skip
            code = cmd_unlearn(parser.parse_args(argv))
        finally:
            Path(f.name).unlink(missing_ok=True)
        if code != common.EXIT_OK:
            raise RuntimeError(f"unlearn exited {code}")
        record = json.loads((out / "record.json").read_text())
        return {"seconds": record["results"][0]["seconds"]}

    def evidence(parent: Path, new: Path, rows: list[int]) -> dict[str, Any]:
        out = measure(parent, new, rows, references=reg.references(), seed=args.seed)
        if args.reference == "retrain":
            out["reference"] = against_retraining(reg.folder / "versions" / "v0000", new, args.seed)
        return out

    made = reg.apply(unlearn, method=args.method, settings=settings, seed=args.seed, one_by_one=args.one_by_one,
                     evidence=evidence)  # fmt: skip
    if not made:
        print("no pending request")
    for v in made:
        print(f"version {v['version']} ({v['folder']}): honours request(s) {v['requests']} — {len(v['rows'])} rows, "
              f"{args.method}, {v['seconds']:.2f} s; receipt: ledger row {v['receipt']['rows']}, head "
              f"{v['receipt']['head']}")  # fmt: skip
    return common.EXIT_OK


def measure(parent: Any, new: Any, rows: list[int], *, references: list[dict[str, Any]] | None = None,
            seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """A new version's evidence without a retrained reference: forgotten vs never-seen, before and after.

    With ``references`` (the registry's reference models), also RMIA (:func:`rmia_vs_unseen`): the
    forgotten samples against never-seen holdout samples, each forgotten sample's likelihood scaled by
    the references that never saw it, the other half of the holdout split as RMIA's population, and
    up to 1,000 samples the version still trains on as the check of the attack's power.
    """
    import torch

    from unlearnkit.core.artifacts import load_model
    from unlearnkit.data import ForgetRequest
    from unlearnkit.evaluation.evidence import forgotten_vs_unseen
    from unlearnkit.evaluation.outputs import outputs_of
    from unlearnkit.evaluation.scores import accuracy

    model, meta, _ds, split, scenario = common.context_from_model(str(new), None)
    before, _ = load_model(parent)
    splits = scenario.prepare(split, seed=meta["seed"], request=ForgetRequest.from_rows(rows, split.train.indices))
    classes = sorted({int(c) for c in splits.forget.labels})
    same = torch.isin(splits.holdout.labels, torch.tensor(classes))
    unseen = splits.holdout.subset(same.nonzero().flatten())
    out: dict[str, Any] = {"rows": len(rows), "unseen": "holdout samples of the forgotten samples' classes"}
    for when, m in (("before", before), ("after", model)):
        out[when] = forgotten_vs_unseen(outputs_of(m, splits.forget), outputs_of(m, unseen))
        out[when]["holdout_accuracy"] = accuracy(outputs_of(m, splits.holdout))
    if references:
        out["rmia"] = _rmia_evidence(before, model, references, splits, seed)
    return out


def _rmia_evidence(before: Any, after: Any, references: list[dict[str, Any]], splits: Any,
                   seed: int) -> dict[str, Any]:  # fmt: skip
    """RMIA before and after, from the registry's reference models (see :func:`measure`)."""
    import numpy as np
    import torch

    from unlearnkit.core.artifacts import load_model
    from unlearnkit.evaluation.evidence import rmia_vs_unseen
    from unlearnkit.evaluation.outputs import outputs_of
    from unlearnkit.evaluation.scores import sample_scores

    g = torch.Generator().manual_seed(int(seed) + 4111)
    perm = torch.randperm(len(splits.holdout), generator=g)
    half = len(perm) // 2
    members = splits.retain.subset(torch.randperm(len(splits.retain), generator=g)[:1000].sort().values)
    groups = {"forget": splits.forget, "members": members, "population": splits.holdout.subset(perm[:half]),
              "unseen": splits.holdout.subset(perm[half:])}  # fmt: skip
    refs = [load_model(r["folder"])[0] for r in references]

    def probs(m: Any) -> dict[str, np.ndarray]:
        return {k: sample_scores(outputs_of(m, v), "confidence") for k, v in groups.items()}

    ref_p = [probs(m) for m in refs]
    stacked = {k: np.stack([p[k] for p in ref_p]) for k in groups}
    out = {k: np.array([[int(i) not in r["rows"] for i in v.indices.tolist()] for r in references])
           for k, v in groups.items() if k in ("forget", "members")}  # fmt: skip
    res: dict[str, Any] = {"population": "half the holdout split; the other half is the never-seen side"}
    for when, m in (("before", before), ("after", after)):
        res[when] = rmia_vs_unseen(probs(m), stacked, out)
    return res


def against_retraining(original: Any, new: Any, seed: int) -> dict[str, Any]:
    """The full comparison: a model retrained from scratch on everything the new version still keeps.

    The forget set is every deletion the new version honours (its sidecar's ``deletions``); Avg. Gap over
    forget / retain / test accuracy and MIA accuracy, as the benchmarks report it.
    """
    import torch

    from unlearnkit.core.artifacts import load_model
    from unlearnkit.core.training import TrainConfig
    from unlearnkit.data import ForgetRequest
    from unlearnkit.evaluation.collection import collect
    from unlearnkit.evaluation.metrics import evaluate, gap
    from unlearnkit.methods import make_method
    from unlearnkit.running.experiment import GAP_METRICS

    model, meta, _ds, split, scenario = common.context_from_model(str(new), None)
    first, _ = load_model(original)
    deleted = torch.tensor(sorted({p for d in meta.get("deletions", []) for p in d["forget_positions"]}))
    splits = scenario.prepare(split, seed=meta["seed"], request=ForgetRequest.from_indices(deleted))
    recipe = TrainConfig.from_dict(meta["training"])
    ref = make_method("retrain").unlearn(first, splits, seed=seed, recipe=recipe)
    m_new = evaluate(collect(model, splits), GAP_METRICS, seed=seed)
    m_ref = evaluate(collect(ref.model, splits), GAP_METRICS, seed=seed)
    gaps = {k: gap(m_new.get(k), m_ref.get(k)) for k in GAP_METRICS}
    defined = [g for g in gaps.values() if g is not None]
    return {"deleted": int(deleted.numel()), "metrics": m_new, "retrained": m_ref, "gap": gaps,
            "avg_gap": 100 * sum(defined) / len(defined) if defined else None,
            "retrain_seconds": ref.seconds}  # fmt: skip


def _show(reg: Any, args: argparse.Namespace) -> int:
    rec = reg.show(args.id)
    req, version, ev = rec["request"], rec["version"], rec["evidence"]
    if args.json:
        print(json.dumps(rec, indent=1))
    else:
        print(f"request {req['id']} ({req['state']}), submitted {req['submitted_at'][:19]} UTC: "
              f"{req['subject'] or 'rows'} — {len(req['rows'])} dataset rows; reason: {req['reason']}")  # fmt: skip
        if version is not None:
            print(f"honoured by version {version['version']} ({version['folder']}, {version['method']}, "
                  f"seed {version['seed']}, {version['seconds']:.2f} s), "
                  f"recorded {version['recorded_at'][:19]} UTC")  # fmt: skip
        if ev is not None:
            for kind in ("loss", "entropy"):
                b, a = ev["before"][kind], ev["after"][kind]
                print(f"  forgotten vs never-seen by {kind}: AUC {b['auc']:.3f} before -> {a['auc']:.3f} after "
                      f"(0.5: indistinguishable); KS {b['ks']:.3f} -> {a['ks']:.3f} "
                      f"(p {a['p_value']:.3g} after)")  # fmt: skip
            if ev.get("rmia"):
                b, a = ev["rmia"]["before"], ev["rmia"]["after"]
                print(f"  RMIA ({a['references']} reference models): forgotten vs never-seen AUC {b['auc']:.3f} "
                      f"before -> {a['auc']:.3f} after (0.5: indistinguishable); the attack's power on samples "
                      f"still trained on: AUC {a['members_auc']:.3f}")  # fmt: skip
            print(f"  holdout accuracy {100 * ev['before']['holdout_accuracy']:.2f}% -> "
                  f"{100 * ev['after']['holdout_accuracy']:.2f}%")  # fmt: skip
            if ev.get("reference"):
                r = ev["reference"]
                print(f"  against retraining on what remains ({r['deleted']} samples deleted so far): Avg. Gap "
                      f"{r['avg_gap']:.2f} points; retraining took {r['retrain_seconds']:.1f} s")  # fmt: skip
    if args.html:
        from unlearnkit.files import write_text_atomic

        write_text_atomic(args.html, request_html(rec))
        print(f"wrote {args.html}")
    return common.EXIT_OK


def request_html(rec: dict[str, Any]) -> str:
    """One request's evidence as a self-contained HTML page (inline SVG): what an auditor reads."""
    import html

    from unlearnkit.reporting import plots

    req, version, ev = rec["request"], rec["version"], rec["evidence"]
    esc = html.escape
    body = [f"<h1>Deletion request {req['id']}</h1>",
            f"<p>State <b>{esc(req['state'])}</b>; submitted {esc(req['submitted_at'])} UTC; "
            f"{esc(req['subject'] or 'dataset rows')}: {len(req['rows'])} rows; "
            f"reason: {esc(req['reason'])}.</p>"]  # fmt: skip
    if version is not None:
        body.append(f"<p>Honoured by version {version['version']} (<code>{esc(version['folder'])}</code>) with "
                    f"<code>{esc(str(version['method']))}</code>, seed {version['seed']}, recorded "
                    f"{esc(version['recorded_at'])} UTC.</p>")  # fmt: skip
    if ev is not None:
        rows = "".join(
            f"<tr><td>{k}</td><td>{ev['before'][k]['auc']:.3f}</td><td>{ev['after'][k]['auc']:.3f}</td>"
            f"<td>{ev['before'][k]['ks']:.3f}</td><td>{ev['after'][k]['ks']:.3f}</td>"
            f"<td>{ev['after'][k]['p_value']:.3g}</td></tr>" for k in ("loss", "entropy"))  # fmt: skip
        body.append("<h2>Forgotten vs never-seen samples</h2><p>Can an attacker tell the forgotten samples from "
                    "never-seen samples of the same classes (the holdout split) by their loss or their "
                    "prediction's entropy? AUC "
                    "0.5 means not at all. No model retrained without the data is needed: this is the check a "
                    "deployed model can afford. It is evidence, not proof: a method can hide samples from this "
                    "test and not from stronger ones.</p><table><tr><th>signal</th><th>AUC before</th>"
                    "<th>AUC after</th><th>KS before</th><th>KS after</th><th>KS p after</th></tr>"
                    + rows + "</table>")  # fmt: skip
        if ev.get("rmia"):
            b, a = ev["rmia"]["before"], ev["rmia"]["after"]
            body.append(f"<h2>RMIA against {a['references']} reference models</h2><p>The stronger attack "
                        "(Zarifzadeh et al., 2024): each sample's likelihood under this model against its "
                        "likelihood under reference models that never saw it, compared with a population of "
                        "never-seen samples. AUC of forgotten vs never-seen samples: "
                        f"<b>{b['auc']:.3f}</b> before, <b>{a['auc']:.3f}</b> after (0.5: indistinguishable). "
                        f"On samples the model still trains on the same attack scores AUC {a['members_auc']:.3f}: "
                        "the further that is above 0.5, the more a forgotten set's 0.5 means.</p>")  # fmt: skip
        body.append(f"<p>Holdout accuracy {100 * ev['before']['holdout_accuracy']:.2f}% before, "
                    f"{100 * ev['after']['holdout_accuracy']:.2f}% after.</p>")  # fmt: skip
        for when in ("before", "after"):
            h = ev[when]["loss"]["histogram"]
            labels = [f"{e:.2g}" for e in h["edges"][:-1]]
            fig = plots.grouped_bars(labels, [("forgotten", h["forget"]), ("never seen", h["unseen"])],
                                     xlabel="per-sample loss (bin start)", ylabel="share of samples %",
                                     title=f"loss, {when} unlearning",
                                     ids=[f"{when}-{i}" for i in range(len(labels))])  # fmt: skip
            body.append(f"<figure>{plots.svg(fig)}</figure>")
    css = ("body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
           "figure{display:inline-block;margin:0 1rem 1rem 0}figure svg{max-width:100%;height:auto}")  # fmt: skip
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Deletion request {req['id']}"
            f"</title><style>{css}</style></head><body>" + "\n".join(body) + "</body></html>\n")
