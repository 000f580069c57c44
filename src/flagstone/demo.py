"""The whole pipeline on demo data in one command: ``python -m flagstone.demo --out demo-out``.

generate -> ingest (catalogue and customer records first) -> scan with every shipped pack ->
evaluate against the planted labels -> HTML report.

The default size, 5 million events (90 days of a mid-sized bank, shop and transit operator), took
about 40 seconds end to end on two cores (generate 7 s, ingest 27 s, scan 3 s, report 1 s) and
needs about 0.7 GB of disk in the output folder. It plants 120 suspicious scenarios and 60 decoys per
rule, enough that precision and recall mean something. ``--events 300000`` runs in under 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from flagstone.errors import FlagstoneError, InputError, printable
from flagstone.evaluate import RuleScore, evaluate_store, render_scores

DEMO_EVENTS = 5_000_000
PACKS = ("aml", "precursors", "transit", "pep")
STORE_NAME = "flagstone.duckdb"
REPORT_NAME = "report.html"
USERS_NAME = "demo-users.txt"
MODEL_DIR = "models/demo"
DEMO_SUPERVISOR = "sam.supervisor"


@dataclass(frozen=True)
class DemoResult:
    data_dir: Path
    store: Path
    report: Path
    alerts: int
    scores: list[RuleScore]
    seconds: float


def find_packs(start: Path | None = None) -> Path:
    """The shipped ``packs`` folder: in the working directory, or at the root of this checkout."""
    here = Path(__file__).resolve()
    candidates = [(start or Path.cwd()) / "packs", *(p / "packs" for p in here.parents)]
    for folder in candidates:
        if all((folder / pack).is_dir() for pack in PACKS):
            return folder
    raise InputError(
        "cannot find the rule packs (a 'packs' folder with " + ", ".join(PACKS) + "); run the demo from "
        "the repository root",
        path=candidates[0],
    )


def _fresh_store(path: Path) -> None:
    """A demo starts from an empty store; only the demo's own files in its own folder are removed."""
    # The demo's case database and audit key go too: a fresh demo has fresh users and a new log.
    for suffix in (
        "",
        ".wal",
        ".cases.sqlite",
        ".cases.sqlite-wal",
        ".cases.sqlite-shm",
        ".audit-key",
        ".audit-key.pub",
        ".audit-key.head",
    ):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_demo(
    out: Path,
    *,
    events: int = DEMO_EVENTS,
    seed: int = 1,
    progress: bool = True,
    console: Console | None = None,
) -> DemoResult:
    from flagstone.generate import generate_demo
    from flagstone.ingest import ingest_file
    from flagstone.oversight.activity import after_scan, record
    from flagstone.owner_only import owner_only_umask
    from flagstone.report import write_report
    from flagstone.rules import load_rules
    from flagstone.scan import scan_store
    from flagstone.store import Store

    owner_only_umask()  # as every flagstone command does: the demo's data and store are personal-looking data
    console = console or Console(quiet=not progress)
    began = time.perf_counter()
    out = Path(out)
    packs = find_packs()

    console.rule("[bold]1/5 generate demo data")
    info = generate_demo(out / "data", events=events, seed=seed, progress=progress)
    console.print(info.summary(), highlight=False)

    store_path = out / STORE_NAME
    _fresh_store(store_path)
    with Store(store_path) as store:
        console.rule("[bold]2/5 ingest")
        ingested = []
        for data, mapping in info.ingest_order():
            ingested.append(ingest_file(store, data, mapping, progress=progress))
            console.print(ingested[-1].summary(), highlight=False)
        record(store_path, [_ingested(r) for r in ingested])

        console.rule("[bold]3/5 scan")
        ruleset = load_rules([packs / p for p in PACKS])
        scanned = scan_store(store, ruleset, progress=progress)
        for line in scanned.summary_lines():
            console.print(line, highlight=False)
        cases = after_scan(store, ruleset, scanned.scan_id, "duckdb", scanned.alerts).cases
        users_file = _demo_users(store_path, out / USERS_NAME)

        console.rule("[bold]4/5 evaluate against the planted scenarios; order the queue by a triage model")
        scores = evaluate_store(store, info.files["labels"])
        console.print(render_scores(scores))
        for line in _triage(store, info.files["labels"], out / MODEL_DIR):
            console.print(line, highlight=False, soft_wrap=True, markup=False)

        console.rule("[bold]5/5 report")
        report = write_report(store, out / REPORT_NAME, labels=info.files["labels"])
        alerts = int(store.scalar("SELECT count(*) FROM alerts"))

    result = DemoResult(info.out_dir, store_path, report, alerts, scores, time.perf_counter() - began)
    cli = _cli_path()
    # Plain lines, never wrapped, so the paths can be copied as they are.
    console.rule(f"[bold green]demo finished in {result.seconds:.0f} s")
    for line in (
        f"alerts:  {alerts:,} (from {info.events:,} events)",
        f"report:  {report}",
        f"store:   {store_path}",
        f"data:    {info.out_dir} (exports, mappings, labels.csv)",
        "open the report in a browser (works offline), or explore the store:",
        f"  {cli} alerts --store {store_path} --rule aml.structuring",
        f"  {cli} evaluate --store {store_path} --labels {info.files['labels']}",
        f"review the {cases:,} cases in the browser (demo users and passwords in {users_file}):",
        f"  {cli} web --store {store_path}",
    ):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    return result


def _triage(store: Any, labels: Path, model_dir: Path) -> list[str]:
    """Train a triage model on the demo's planted labels, activate it as the demo supervisor, and
    give the cases its priorities: the queue of `flagstone web` is then read in that order. (On real
    data a model is trained on history and measured on a later period: docs/triage.md.)"""
    try:
        import lightgbm  # noqa: F401 - only to know whether the optional extra is installed
    except ImportError:
        return ["triage: skipped (install the extra: pip install 'flagstone[triage]')"]
    from flagstone.audit.events import AlertsScored, TriageModelActivated, TriageModelTrained
    from flagstone.oversight.context import Oversight
    from flagstone.oversight.sync import sync_alerts
    from flagstone.triage.history import labelled, train_on
    from flagstone.triage.registry import activate, register, score_store

    history = labelled(store.con, labels)
    features, y = history.features, history.labels
    source = f"the demo's planted labels ({labels.name})"
    try:
        model = train_on(history, label_source=source)
    except FlagstoneError as exc:  # a small demo may have too few alerts for time-ordered periods
        return [f"triage: no model trained ({printable(str(exc))})"]
    shutil.rmtree(model_dir, ignore_errors=True)  # a fresh demo's model replaces the last one
    model.save(model_dir)
    register(store, model)
    # No review sample in the demo, so that its queue is in priority order from the top; a real
    # activation draws one (`triage activate --review-sample`, default 2 %: docs/triage.md).
    previous = activate(store, model.version, review_sample=0.0)
    n = score_store(store, model, features=features)
    ov = Oversight.open(store.path)
    try:
        ov.audit.record("demo", TriageModelTrained(model.version, source, len(y), sum(y)))
        ov.audit.record(DEMO_SUPERVISOR, TriageModelActivated(model.version, DEMO_SUPERVISOR, previous))
        ov.audit.record(DEMO_SUPERVISOR, AlertsScored(model.version, n))
        sync_alerts(ov, store)
    finally:
        ov.close()
    top = store.con.execute(
        "SELECT a.rule_id, s.priority, s.explanation FROM alert_scores s JOIN alerts a USING (alert_id) "
        "WHERE s.model_id = ? ORDER BY s.priority DESC, a.alert_id LIMIT 3",
        [model.version],
    ).fetchall()
    figures = model.card.get("validation", {})
    auc = figures.get("auc") if isinstance(figures, dict) else None
    measured = f", AUC {auc:.2f} on the latest period" if isinstance(auc, float) else ""
    lines = [
        f"triage: model {model.version} ({model_dir}) trained on {len(y):,} alerts ({sum(y):,} true)"
        f"{measured}; activated for {DEMO_SUPERVISOR}; {n:,} alerts scored",
        "the queue is read in priority order (no random review sample in the demo); its top:",
    ]
    lines += [f"  {p:.2f} {rule_id}: {text}" for rule_id, p, text in top]
    return lines


def _ingested(r: Any) -> Any:
    from flagstone.audit.events import Ingested

    return Ingested(r.source, r.file, r.batch_id, r.read, r.loaded, r.quarantined, r.duplicates)


def _demo_users(store_path: Path, users_file: Path) -> Path:
    """One user per role for trying the case review, with random passwords written to a file only
    the owner can read. Two supervisors, so that a report can pass four eyes.

    As on a real deployment: the admin comes first (the bootstrap admin of an empty case database);
    the other users are asked for on the command line, and the supervisor roles, which need a second
    person, are approved by that admin (docs/oversight.md, "Granting roles")."""
    from flagstone.oversight.context import Oversight, cli_actor
    from flagstone.oversight.users import Grant, User, approve_grant, create_user, new_password

    people = [
        # Names no operating-system account is likely to have: the command line acts as the OS user
        # (cli:NAME), and an account of that name would count as the same person (no approval).
        ("ann.admin", "admin", "Ann Admin"),
        ("ada.analyst", "analyst", "Ada Analyst"),
        ("sam.supervisor", "supervisor", "Sam Supervisor"),
        ("sue.supervisor", "supervisor", "Sue Supervisor"),
        ("aud.auditor", "auditor", "Aud Auditor"),
    ]
    lines = []
    ov = Oversight.open(store_path)
    try:
        admin: User | None = None
        for username, role, name in people:
            password = new_password()
            made = create_user(ov, cli_actor(), username, password, role, ov.config.cases.default_team, name)
            if isinstance(made, Grant):
                if admin is None:
                    raise InputError(f"the demo's user {username} waits for an admin, and there is none")
                approve_grant(ov, admin, made.id)
            elif role == "admin":
                admin = made
            lines.append(f"{username}\t{role}\t{password}")
    finally:
        ov.close()
    users_file.unlink(missing_ok=True)
    fd = os.open(users_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# demo users of `flagstone web` (user, role, password)\n" + "\n".join(lines) + "\n")
    return users_file


def _cli_path() -> str:
    """How to call the CLI from here: the venv's script when it is not on PATH (as after `make demo`)."""
    script = Path(sys.executable).parent / "flagstone"
    if shutil.which("flagstone") == str(script) or not script.exists():
        return "flagstone"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flagstone.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    parser.add_argument("--events", type=int, default=DEMO_EVENTS, help=f"events to generate ({DEMO_EVENTS:,})")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    console = Console()
    try:
        run_demo(args.out, events=args.events, seed=args.seed, progress=not args.quiet, console=console)
    except FlagstoneError as exc:
        console.print(Text.assemble(("error:", "bold red"), " ", printable(str(exc))), highlight=False, soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
