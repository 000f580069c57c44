"""Demo data the scoring-service tests post: the bank export as JSON lines (with its mapping), the
shop's JSON lines, and a store with the reference data loaded."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
PACKS = [REPO / "packs" / p for p in ("aml", "precursors", "pep")]


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
