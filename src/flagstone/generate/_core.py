"""``generate_demo``: reference files, planted scenarios, then the three exports slice by slice."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from flagstone.generate._bank import Bank
from flagstone.generate._mappings import MAPPINGS
from flagstone.generate._planted import Planted, columns
from flagstone.generate._scenarios import RULE_IDS, World, plant_all
from flagstone.generate._shop import Shop
from flagstone.generate._time import DAY_S, DAYS, START_S, slices
from flagstone.generate._transit import Transit
from flagstone.generate._write import BankWriter, Columns, ShopWriter, TransitWriter, merge

SHARES = {"bank": 0.5, "shop": 0.2, "transit": 0.3}
LABEL_COLUMNS = ("scenario_id", "rule_id", "label", "source", "event_id")
BANK_COLS = {
    "scenario": "int",
    "ts": "int",
    "account": "str",
    "code": "str",
    "counter": "str",
    "cents": "int",
    "channel": "str",
    "terminal": "str",
    "reference": "str",
}
SHOP_COLS = {
    "scenario": "int",
    "ts_ms": "int",
    "order": "int",
    "line": "int",
    "customer": "str",
    "sku": "str",
    "qty": "int",
    "unit_cents": "int",
    "store": "str",
}
TRANSIT_COLS = {
    "scenario": "int",
    "ts_ms": "int",
    "card": "str",
    "vehicle": "str",
    "product": "str",
    "fare_cents": "int",
}


@dataclass
class GeneratedInfo:
    """What ``generate_demo`` wrote, and where."""

    out_dir: Path
    files: dict[str, Path]  # bank, shop, transit, entities, catalogue, labels
    mappings: dict[str, Path]  # same keys as the data files they map
    rows: dict[str, int]  # records written per file
    suspicious: int
    decoys: int
    seed: int
    seconds: float
    rules: tuple[str, ...] = field(default=RULE_IDS)

    @property
    def events(self) -> int:
        return sum(self.rows[s] for s in SHARES)

    def ingest_order(self) -> list[tuple[Path, Path]]:
        """(file, mapping) pairs in the order to ingest them: the catalogue and the customer
        records first, because purchases look up categories and the PEP rule joins customers."""
        return [(self.files[k], self.mappings[k]) for k in ("catalogue", "entities", "bank", "shop", "transit")]

    def summary(self) -> str:
        per_source = ", ".join(f"{s} {self.rows[s]:,}" for s in SHARES)
        lines = [
            f"wrote {self.events:,} events ({per_source}) to {self.out_dir} in {self.seconds:.1f} s (seed {self.seed})",
            f"planted {self.suspicious} suspicious scenarios and {self.decoys} near-miss decoys "
            f"for {len(self.rules)} rules; labels in {self.files['labels']}",
            f"entities {self.rows['entities']:,}, catalogue items {self.rows['catalogue']:,}; ingest in this order:",
        ]
        lines += [f"  flagstone ingest {f} --mapping {m}" for f, m in self.ingest_order()]
        return "\n".join(lines)


class _Writer(Protocol):
    def write(self, cols: Columns, scenario: np.ndarray) -> list[tuple[int, str]]: ...
    def close(self) -> None: ...


@dataclass
class _Export:
    """One export file: its planted rows, how to make its background, and its writer."""

    name: str
    planted: dict[str, list[object]]
    kinds: dict[str, str]
    sort_keys: list[str]
    background: Callable[[np.random.Generator, int, int, int], Columns]
    writer: _Writer

    def write(
        self, nominal: int, seed: list[int], labels: list[tuple[int, str, str]], bar: Progress, task: TaskID
    ) -> int:
        """Write background and planted rows slice by slice; append planted ids to ``labels``."""
        plant = columns(self.planted, self.kinds)
        ts_key = "ts" if "ts" in plant else "ts_ms"
        per_s = 1 if ts_key == "ts" else 1000
        plant_day = (np.asarray(plant[ts_key]) // per_s - START_S) // DAY_S
        n_bg = max(0, nominal - len(plant_day))
        bar.update(task, total=n_bg + len(plant_day))
        written = 0
        for i, (day0, day1) in enumerate(slices(n_bg)):
            # Each slice has its own generator, so a slice's rows do not depend on the ones before.
            rng = np.random.default_rng([*seed, i])
            background = self.background(rng, day0, day1, round(n_bg * day1 / DAYS) - round(n_bg * day0 / DAYS))
            mine = np.flatnonzero((plant_day >= day0) & (plant_day < day1))
            part = {c: v[mine] if isinstance(v, np.ndarray) else v.take(mine) for c, v in plant.items()}  # type: ignore[attr-defined]
            cols, scenario = merge(background, part, self.sort_keys)
            labels += [(sc, self.name, event_id) for sc, event_id in self.writer.write(cols, scenario)]
            written += len(scenario)
            bar.update(task, completed=written)
        self.writer.close()
        return written


def generate_demo(out_dir: Path, *, events: int = 1_000_000, seed: int = 1, progress: bool = True) -> GeneratedInfo:
    """Write demo exports, mappings and labels for about ``events`` events into ``out_dir``.

    The same ``seed`` and ``events`` always give byte-identical files. Memory stays bounded by
    one time slice (about 250,000 rows), whatever ``events`` is.
    """
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    events = max(1_000, int(events))
    rng = np.random.default_rng(seed)
    nominal = {s: round(events * share) for s, share in SHARES.items()}
    world = World(
        rng,
        Bank.build(rng, nominal["bank"]),
        Shop.build(rng, nominal["shop"]),
        Transit.build(rng, nominal["transit"]),
        Planted(),
    )
    plant_all(world, events)
    planted = world.planted

    files = {
        k: out_dir / f"{k}.{ext}"
        for k, ext in (
            ("bank", "csv"),
            ("shop", "jsonl"),
            ("transit", "parquet"),
            ("entities", "csv"),
            ("catalogue", "csv"),
            ("labels", "csv"),
        )
    }
    mappings = {k: out_dir / f"{k}.yaml" for k in ("bank", "shop", "transit", "entities", "catalogue")}
    for path in mappings.values():
        path.write_text(MAPPINGS[path.name], encoding="utf-8")
    rows = {
        "catalogue": _write_catalogue(files["catalogue"], world.shop),
        "entities": _write_entities(files["entities"], world.bank),
    }

    exports = [
        _Export("bank", planted.bank, BANK_COLS, ["ts"], world.bank.background, BankWriter(files["bank"])),
        _Export(
            "shop",
            planted.shop,
            SHOP_COLS,
            ["ts_ms", "planted", "order", "line"],
            world.shop.background,
            ShopWriter(files["shop"]),
        ),
        _Export(
            "transit",
            planted.transit,
            TRANSIT_COLS,
            ["ts_ms"],
            world.transit.background,
            TransitWriter(files["transit"]),
        ),
    ]
    labels: list[tuple[int, str, str]] = []
    with _progress(progress) as bar:
        for k, export in enumerate(exports):
            task = bar.add_task(f"{files[export.name].name:<16}", total=nominal[export.name])
            rows[export.name] = export.write(nominal[export.name], [seed, k], labels, bar, task)

    rows["labels"] = _write_labels(files["labels"], planted, labels)
    return GeneratedInfo(
        out_dir=out_dir,
        files=files,
        mappings=mappings,
        rows=rows,
        suspicious=sum(s.label == "suspicious" for s in planted.scenarios),
        decoys=sum(s.label == "decoy" for s in planted.scenarios),
        seed=seed,
        seconds=time.perf_counter() - began,
    )


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    bar = Progress(
        TextColumn("[bold]generate[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )
    with bar:
        yield bar


def _write_catalogue(path: Path, shop: Shop) -> int:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["sku", "category", "description"])
        out.writerows([p.sku, p.category, p.description] for p in shop.products)
    return len(shop.products)


def _write_entities(path: Path, bank: Bank) -> int:
    rows = bank.entity_rows()
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["account", "customer_type", "pep", "monthly_income", "country"])
        for r in rows:
            out.writerow(
                [
                    r.account,
                    r.kind,
                    "yes" if r.pep else "no",
                    "" if r.income is None else f"{r.income}.00",
                    r.country,
                ]
            )
    return len(rows)


def _write_labels(path: Path, planted: Planted, labels: list[tuple[int, str, str]]) -> int:
    labels.sort(key=lambda x: (x[0], x[1], x[2]))
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(LABEL_COLUMNS)
        for sc, source, event_id in labels:
            s = planted.scenarios[sc]
            out.writerow([s.scenario_id, s.rule_id, s.label, source, event_id])
    return len(labels)
