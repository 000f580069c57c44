"""The HTML report: self-contained, escaped, carrying its plots' data, and rendering offline."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from browser import CHROMIUM_ARGS, require_chromium

from flagstone.report import write_report
from flagstone.store import Store

T0 = datetime(2025, 2, 3, 9, 0)
EVIL = "<script>alert('x')</script>"
EXTERNAL = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.I)


def add_event(store: Store, source: str, event_id: str, ts: datetime, amount: str, **extra: object) -> None:
    cols = {
        "event_id": event_id,
        "source": source,
        "ts": ts,
        "kind": "cash_deposit",
        "actor": "p1",
        "amount": Decimal(amount),
        "currency": "EUR",
        "batch_id": 1,
        **extra,
    }
    names = ", ".join(cols)
    store.con.execute(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(cols))})", list(cols.values()))


def add_alert(
    store: Store,
    alert_id: str,
    rule_id: str,
    severity: str,
    evidence: list[str],
    *,
    reason: str = "3 deposits",
    group_key: str = "actor=ps_7f3a",
    last: datetime = T0,
) -> None:
    store.con.execute(
        "INSERT INTO alerts VALUES (?, 1, ?, 1, ?, ?, ?, ?, 'bank', ?, ?, ?, ?, ?)",
        [
            alert_id,
            rule_id,
            severity,
            group_key,
            T0,
            last,
            evidence[-1],
            ["bank"] * len(evidence),
            evidence,
            json.dumps({"deposits": len(evidence), "total": 28_512.5}),
            reason,
        ],
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "s.duckdb")
    for i, amount in enumerate(("9512.25", "9733.10", "9267.15")):
        add_event(st, "bank", f"b{i}", T0 + timedelta(days=i), amount)
    add_alert(
        st,
        "a1",
        "aml.structuring",
        "high",
        ["b0", "b1", "b2"],
        reason=f"deposits {EVIL}",
        group_key="actor=<b>ps_1</b>",
    )
    add_alert(st, "a2", "aml.cash_velocity", "medium", ["b1", "b2"], last=T0 + timedelta(days=3))
    add_alert(st, "a3", "aml.cash_velocity", "low", ["b2"], last=T0 + timedelta(days=9))
    add_alert(st, "a4", "aml.structuring", "high", ["b0", "missing"], last=T0 + timedelta(days=5))
    yield st
    st.close()


def figures(html: str) -> dict[str, dict[str, object]]:
    block = re.search(r"<script type='application/json' id='fs-figures'>(.*?)</script>", html, re.S)
    assert block, "figure data block missing"
    return json.loads(block.group(1))


def test_report_is_self_contained_with_plot_data(store: Store, tmp_path: Path) -> None:
    path = write_report(store, tmp_path / "out" / "report.html")
    html = path.read_text(encoding="utf-8")

    assert EXTERNAL.search(html) is None
    assert html.count("plotly.js v") == 1  # the library is inlined once, not per figure
    figs = figures(html)
    assert len(figs) == 3 + 4  # over time, severity, top groups, one timeline per alert
    amounts = [y for f in figs.values() for trace in f["data"] if trace.get("name") == "amount" for y in trace["y"]]
    assert 9512.25 in amounts and 9733.1 in amounts
    severity = next(f for f in figs.values() if f["data"][0].get("x") == ["high", "medium", "low"])
    assert severity["data"][0]["y"] == [2, 1, 1]
    assert "All 4 alerts" in html
    assert "1 evidence events no longer in the store" in html


def test_report_escapes_everything(store: Store, tmp_path: Path) -> None:
    html = write_report(store, tmp_path / "report.html").read_text(encoding="utf-8")
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>ps_1</b>" not in html and "&lt;b&gt;ps_1&lt;/b&gt;" in html
    block = re.search(r"id='fs-figures'>(.*?)</script>", html, re.S)
    assert block and "<" not in block.group(1)  # nothing in the data can close its script element


def test_report_limits_timelines_and_says_so(store: Store, tmp_path: Path) -> None:
    html = write_report(store, tmp_path / "report.html", top_alerts=2).read_text(encoding="utf-8")
    assert "<b>2 alerts are not shown here</b>" in html
    assert html.count("<article class='alert'") == 2
    # Most severe first, then most recent: both high alerts, the later one (a4) first.
    assert html.index("actor=&lt;b&gt;ps_1") > html.index("missing")


def test_report_with_labels_has_evaluation(store: Store, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "scenario_id,rule_id,label,source,event_id\ns1,aml.structuring,suspicious,bank,b0\n"
        "d1,aml.cash_velocity,decoy,bank,b9\n",
        encoding="utf-8",
    )
    html = write_report(store, tmp_path / "report.html", labels=labels).read_text(encoding="utf-8")
    assert "Evaluation against labelled scenarios" in html
    row = re.search(r"<code>aml.structuring</code></td>(.*?)</tr>", html.split("Evaluation against")[1], re.S)
    assert row and [c for c in re.findall(r">([^<>]+)</td>", row.group(1))] == [
        "1",
        "1",
        "1.00",
        "2",
        "1.00",
        "1.00",
        "0/0",
    ]


def test_report_of_empty_store(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as st:
        html = write_report(st, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No alerts in the store" in html and figures(html) == {}


CHROMIUM_FLAGS = ["--headless", *CHROMIUM_ARGS, "--hide-scrollbars", "--virtual-time-budget=8000"]


def test_report_renders_offline_in_chromium(store: Store, tmp_path: Path) -> None:
    chromium = require_chromium()
    path = write_report(store, tmp_path / "report.html").resolve()
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", path.as_uri() + "#all"], capture_output=True, text=True, timeout=120)
    # plotly.js ran from the page itself, offline, and drew every figure (over time, severity,
    # top groups, four timelines) as SVG; "#all" draws those outside the window too.
    assert dom.stdout.count('data-drawn="1"') == 7, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 7
    assert dom.stdout.count("could not be drawn") == 1  # only in the script itself
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, "--window-size=1280,2400", f"--screenshot={shot}", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.exists() and shot.stat().st_size > 20_000
