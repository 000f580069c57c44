"""Demo data the scoring-service tests post: the bank export as JSON lines (with its mapping), the
shop's JSON lines, and a store with the reference data loaded."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagstone.engines.realtime import RealtimeEngine
from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
# Packs and the one rule of packs/aml-typologies that runs in real time (the others are deviation
# and dormancy rules): a sequence over the account view.
PACKS = [
    *(REPO / "packs" / p for p in ("aml", "precursors", "pep")),
    REPO / "packs" / "aml-typologies" / "pass_through.yaml",
]
SERVE_RULES = ["--rules", str(PACKS[0]), "--rules", str(PACKS[1])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(store: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """`flagstone serve` (aml and precursors, canonical source "api") in its own process, once its
    health check answers 200."""
    command = [sys.executable, "-m", "flagstone", "serve", "--store", str(store), *SERVE_RULES, "--source", "api"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "server exited")
    proc.kill()
    raise AssertionError("server did not start")


@dataclass
class DemoFiles:
    bank: Path
    bank_mapping: Path
    shop: Path
    shop_mapping: Path
    references: list[tuple[Path, Path]]  # catalogue and entities, with their mappings

    def records(self, source: str) -> list[dict[str, Any]]:
        path = self.bank if source == "bank" else self.shop
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ScoreCounter:
    """Counts the events the real-time engine scores: a replay of the store would score every
    stored one, so a count shows that nothing was replayed (no timing needed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = RealtimeEngine.score

        def score(engine: RealtimeEngine, event: Any) -> Any:
            self.n += 1
            return real(engine, event)

        monkeypatch.setattr(RealtimeEngine, "score", score)


def valid_event(i: int) -> dict[str, Any]:
    """A canonical event the service always accepts: cash deposits of a few accounts, a second apart."""
    return {
        "event_id": f"v{i}",
        "ts": f"2024-05-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
        "kind": "cash_deposit",
        "actor": f"acc{i % 7}",
        "amount": "9500",
        "currency": "EUR",
    }


def demo_files(folder: Path, events: int, seed: int = 3) -> DemoFiles:
    info = generate_demo(folder, events=events, seed=seed, progress=False)
    order = dict((m.stem, (d, m)) for d, m in info.ingest_order())
    bank_csv, bank_yaml = order["bank"]
    # The same export as JSON lines: amounts with a decimal point, the mapping without CSV options.
    with bank_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    bank = folder / "bank.jsonl"
    with bank.open("w", encoding="utf-8") as out:
        for row in rows:
            row["AMOUNT"] = row["AMOUNT"].replace(",", ".")
            out.write(json.dumps({k: v for k, v in row.items() if v != ""}) + "\n")
    text = bank_yaml.read_text().replace("format: csv", "format: jsonl")
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("csv:", "  delimiter:", "  decimal:")))
    bank_mapping = folder / "bank_json.yaml"
    bank_mapping.write_text(text + "\n")
    return DemoFiles(bank, bank_mapping, *order["shop"], [order["catalogue"], order["entities"]])


def reference_store(path: Path, files: DemoFiles, key_from: Path | None = None) -> None:
    """A store with only the catalogue and the customer records, pseudonymised with ``key_from``'s
    key when given (so that two stores give the same pseudonyms)."""
    if key_from is not None:
        shutil.copy(f"{key_from}.key", f"{path}.key")
    with Store(path) as store:
        for data, mapping in files.references:
            ingest_file(store, data, mapping, progress=False)


def time_order(store: Path, files: DemoFiles) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every bank and shop record with its source, in the events' time order (as a batch ingest of
    the same files put them in ``store``)."""
    with Store(store, read_only=True) as st:
        order = st.con.execute("SELECT source, event_id FROM events ORDER BY ts, event_id, source").fetchall()
    by_key = {("bank", r["TXN_ID"]): r for r in files.records("bank")}
    by_key.update({("shop", r["line_id"]): r for r in files.records("shop")})
    for source, event_id in order:
        yield source, by_key[(source, event_id)]


def canonical_file(store: Path, out: Path) -> Path:
    """The bank and shop events of ``store`` as canonical JSON lines (no attrs), in time order."""
    with Store(store, read_only=True) as st:
        rows = st.con.execute(
            "SELECT event_id, ts, kind, actor, counterparty, amount, currency, item, category, quantity, place, "
            "channel FROM events WHERE source IN ('bank', 'shop') ORDER BY ts, event_id, source"
        ).fetchall()
        names = [d[0] for d in st.con.description]
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            record = {
                k: (str(v) if v is not None and k in ("amount", "quantity") else v)
                for k, v in zip(names, row, strict=True)
            }
            record["ts"] = record["ts"].isoformat()
            fh.write(json.dumps(record) + "\n")
    return out
