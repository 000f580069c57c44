"""The case review UI in a real browser (Debian's chromium through Playwright), against the real app
served by uvicorn: a supervisor works an AML case from the queue to an approved goAML report under
four eyes, another team's analyst cannot see it, and repeated wrong passwords lock an account.

Every step asserts what the page shows against the case database (or an independent oracle), and
leaves a full-page screenshot in ``$FLAGSTONE_SCREENSHOTS`` (default ``test-artifacts/screenshots``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import struct
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM_ARGS, require_chromium
from oversight_data import PASSWORD, Setup, build_scanned_store, copy_store, set_up
from sqlalchemy import select, update
from web_server import serving

from flagstone.ingest import Pseudonymiser
from flagstone.oversight import goaml
from flagstone.oversight.context import utcnow
from flagstone.oversight.schema import case_events, cases, proposals
from flagstone.oversight.workflow import CLOSED
from flagstone.web import create_web_app

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None  # type: ignore[assignment]

REPO = Path(__file__).resolve().parent.parent
SHOTS = (
    "01-login.png",
    "02-queue.png",
    "03-case.png",
    "04-revealed.png",
    "05-proposed.png",
    "06-approved.png",
    "07-other-team-404.png",
    "08-locked.png",
)
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
REVEAL_REASON = "STR preparation: confirm who sends the fan-out transfers"
PROPOSAL = "Eight transfers to eight new counterparties within two days: possible layering."
WRONG = "not the password at all"


def readable(value: object) -> str:
    """How the case page should write an alert's value: thousands separators, money to the cent."""
    text = str(value)
    if text.lstrip("-").isdigit():
        return f"{int(text):,}"
    try:
        return f"{Decimal(text):,.2f}"
    except ArithmeticError:
        return text


def require_browser() -> str:
    return require_chromium(("playwright", sync_playwright))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Setup]:
    store = build_scanned_store(tmp_path / "scanned")
    s = set_up(copy_store(store, tmp_path / "store"), f"sqlite:///{tmp_path / 'cases.sqlite'}")
    # Sync stamps every case with the same detection time; spread them over distinct days (in an
    # order unrelated to their ids) so that sorting by age has something to show.
    with s.ov.engine.begin() as con:
        ids = list(con.execute(select(cases.c.id).order_by(cases.c.id)).scalars())
        days = random.Random(6).sample(range(1, 4 * len(ids) + 1), len(ids))
        deadline = timedelta(days=s.ov.config.cases.filing_deadline_days)
        now = utcnow()
        for case_id, d in zip(ids, days, strict=True):
            detected = now - timedelta(days=d, hours=1)
            con.execute(
                update(cases).where(cases.c.id == case_id).values(detected_at=detected, deadline=detected + deadline)
            )
    yield s
    s.ov.close()


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("FLAGSTONE_SCREENSHOTS") or REPO / "test-artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        (folder / name).unlink(missing_ok=True)
    return folder


# -- what the case database says (the oracle) --------------------------------------------------


def db_cases(s: Setup, team: str, **where: Any) -> list[Any]:
    query = select(cases).where(cases.c.team == team, cases.c.state.not_in(CLOSED))
    for column, value in where.items():
        query = query.where(cases.c[column] == value)
    with s.ov.engine.connect() as con:
        return list(con.execute(query.order_by(cases.c.id)))


def db_evidence(s: Setup, case_id: int) -> list[dict[str, Any]]:
    with s.ov.engine.connect() as con:
        rows = con.execute(select(case_events).where(case_events.c.case_id == case_id))
        return [dict(r._mapping) for r in rows]


def pick_case(s: Setup) -> tuple[Any, list[dict[str, Any]]]:
    """The first active AML case whose evidence has flows between parties (so it has a network)."""
    for row in db_cases(s, "aml"):
        evidence = db_evidence(s, row.id)
        if any(e["counterparty"] for e in evidence) and len(evidence) > 1:
            return row, evidence
    raise AssertionError("the demo has no AML case with counterparties")


# -- browser helpers ---------------------------------------------------------------------------


def shoot(page: Page, folder: Path, name: str) -> None:
    assert name in SHOTS
    page.screenshot(path=str(folder / name), full_page=True)


def log_in(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_load_state()
    refused = "the browser's log-in POST was refused by the CSRF / same-origin check"
    expect(page.locator("h1"), refused).not_to_have_text("Refused")


def log_out(page: Page, base: str) -> None:
    page.click("#logout")
    expect(page).to_have_url(f"{base}/login")
    expect(page.locator("#logout")).to_have_count(0)


def queue_rows(page: Page) -> list[dict[str, str]]:
    """The queue table as dicts keyed by its column headings."""
    heads = page.locator("#queue tr th").all_inner_texts()
    rows = []
    for tr in page.locator("#queue tr").all()[1:]:
        cells = [c.strip() for c in tr.locator("td").all_inner_texts()]
        rows.append(dict(zip(heads, cells, strict=True)))
    return rows


def case_id(row: dict[str, str]) -> int:
    return int(row["Case"].lstrip("#"))


def detected_date(row: dict[str, str]) -> str:
    match = re.match(r"\d{4}-\d{2}-\d{2}", row["Detected"])
    assert match, row
    return match.group(0)


def filter_queue(page: Page, **choices: str) -> list[dict[str, str]]:
    for name, value in choices.items():
        page.select_option(f"form.filters select[name={name}]", value)
    page.click("#filter")
    for name, value in choices.items():
        expect(page).to_have_url(re.compile(rf"[?&]{name}={value}(&|$)"))
    return queue_rows(page)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 600 and height >= 300, (path, width, height)
    assert len(data) > 8_000, (path, len(data))  # a blank page compresses to far less


# -- the flow ----------------------------------------------------------------------------------


def test_supervisors_work_a_case_to_an_approved_report_in_the_browser(env: Setup, shots: Path, tmp_path: Path) -> None:
    chromium = require_browser()
    s = env
    case, evidence = pick_case(s)
    cid = case.id
    subject = case.group_key.split("=", 1)[1]
    active_aml = db_cases(s, "aml")
    other_team = {r.id for r in db_cases(s, "precursors")} | {r.id for r in db_cases(s, "transit")}
    assert other_team, "the demo should give other teams cases too"

    with serving(create_web_app(s.ov)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(10_000)
        page = context.new_page()
        csp_violations: list[str] = []
        page.on(
            "console",
            lambda m: csp_violations.append(f"{page.url}: {m.text}") if "Content Security Policy" in m.text else None,
        )
        try:
            # 1. log in as supervisor sam and land on the queue: only team aml's active cases.
            response = page.goto(f"{base}/queue")
            assert response is not None
            expect(page).to_have_url(f"{base}/login")  # no session: sent to the log-in page
            expect(page.locator("h1")).to_have_text("Log in")
            shoot(page, shots, "01-login.png")
            log_in(page, base, "sam")
            expect(page).to_have_url(f"{base}/queue")
            expect(page.locator("h1")).to_have_text("Alert queue")
            expect(page.locator("header .who")).to_contain_text("supervisor · team aml")
            rows = queue_rows(page)
            assert {case_id(r) for r in rows} == {r.id for r in active_aml}
            assert not {case_id(r) for r in rows} & other_team
            assert all(r["Rule"].startswith(("aml.", "pep.")) for r in rows)
            expect(page.get_by_text(f"{len(active_aml)} cases.")).to_be_visible()
            # default sort: most severe first, then oldest
            ranks = [SEVERITY_RANK[r["Severity"]] for r in rows]
            assert ranks == sorted(ranks, reverse=True)
            shoot(page, shots, "02-queue.png")

            by_age = filter_queue(page, sort="age")
            dates = [detected_date(r) for r in by_age]
            assert dates == sorted(dates) and len(set(dates)) == len(dates)
            assert [case_id(r) for r in by_age] == [r.id for r in sorted(active_aml, key=lambda r: r.detected_at)]
            assert [case_id(r) for r in by_age] != [case_id(r) for r in rows]  # the sort changed the order

            medium = filter_queue(page, severity="medium")
            assert medium and {r["Severity"] for r in medium} == {"medium"}
            assert {case_id(r) for r in medium} == {r.id for r in db_cases(s, "aml", severity="medium")}
            still_by_age = [detected_date(r) for r in medium]
            assert still_by_age == sorted(still_by_age)
            high = filter_queue(page, severity="high")
            assert {case_id(r) for r in high} == {r.id for r in db_cases(s, "aml", severity="high")}
            filter_queue(page, severity="")  # back to every severity, so the case's link is listed

            # 2. open the case from its link; the page shows why it fired and its evidence.
            page.click(f'a.case-link[href="/cases/{cid}"]')
            expect(page).to_have_url(f"{base}/cases/{cid}")
            expect(page.locator("h1")).to_contain_text(f"Case #{cid}")
            expect(page.locator("#state")).to_have_text("open")
            expect(page.locator("#reason p")).to_have_text(case.reason)
            shown_values = {
                tr.locator("td").nth(0).inner_text(): tr.locator("td").nth(1).inner_text()
                for tr in page.locator("#reason table tr").all()[1:]
            }
            assert shown_values == {k: readable(v) for k, v in json.loads(case.values_json).items()}
            expect(page.locator("#evidence tr")).to_have_count(len(evidence) + 1)
            expect(page.get_by_role("heading", name=f"Evidence timeline ({len(evidence)} events)")).to_be_visible()
            shown_events = {t.strip() for t in page.locator("#evidence tr td:last-child").all_inner_texts()}
            assert shown_events == {f"{e['source']}/{e['event_id']}" for e in evidence}
            svg = page.locator("svg.network")
            expect(svg).to_have_count(1)
            expect(svg.locator("g.focus title")).to_have_text(subject)
            nodes = set(svg.locator("g title").all_text_contents())
            counterparties = {e["counterparty"] for e in evidence if e["counterparty"]}
            assert subject in nodes and (counterparties <= nodes or len(nodes) == 25)
            parties = sorted({x for e in evidence for x in (e["actor"], e["counterparty"]) if x})
            assert page.locator("#parties tr td.mono").all_inner_texts() == parties
            expect(page.locator(".identity")).to_have_count(0)  # nothing revealed yet
            assert page.locator("#approve").count() == 0
            shoot(page, shots, "03-case.png")

            # 3. reveal the subject, with a reason; the identity shows on the case page.
            page.select_option("#reveal-pseudonym", subject)
            page.fill("#reveal-reason", REVEAL_REASON)
            page.click("#reveal")
            expect(page).to_have_url(f"{base}/cases/{cid}?done=reveal")
            identity = page.locator(f'.identity[data-pseudonym="{subject}"]')
            expect(identity).to_have_count(1)
            expect(page.locator(".identity")).to_have_count(1)  # only the one asked for
            shown = identity.inner_text().strip()
            assert shown and shown != subject
            assert Pseudonymiser.for_store(s.store).pseudonymise(shown) == subject
            expect(page.locator("#parties")).to_contain_text(f"revealed: {REVEAL_REASON}")
            shoot(page, shots, "04-revealed.png")

            # 4. propose a report: sam may not approve his own proposal (four eyes).
            page.fill("#propose-text", PROPOSAL)
            page.click("#propose")
            expect(page).to_have_url(f"{base}/cases/{cid}?done=propose")
            expect(page.locator("#state")).to_have_text("proposed")
            expect(page.locator("#actions")).to_contain_text(f"Report proposed by sam: {PROPOSAL}")
            expect(page.locator("#actions")).to_contain_text("A second supervisor must approve it")
            expect(page.locator("#approve")).to_have_count(0)
            expect(page.locator("#download")).to_have_count(0)
            shoot(page, shots, "05-proposed.png")

            # 5. sue approves it and downloads the goAML report.
            log_out(page, base)
            log_in(page, base, "sue")
            expect(page).to_have_url(f"{base}/queue")
            expect(page.locator("header .who")).to_contain_text("Sue Tester")
            page.click(f'a.case-link[href="/cases/{cid}"]')
            expect(page.locator("#state")).to_have_text("proposed")
            expect(page.locator("#actions")).not_to_contain_text("A second supervisor must approve it")
            page.click("#approve")
            expect(page).to_have_url(f"{base}/cases/{cid}?done=approve")
            expect(page.locator("#state")).to_have_text("approved")
            expect(page.locator("#actions")).to_contain_text("Report proposed by sam, approved by sue.")
            expect(page.locator("#approve")).to_have_count(0)
            shoot(page, shots, "06-approved.png")
            with page.expect_download() as info:
                page.get_by_role("link", name="Download goAML XML").click()
            download = info.value
            assert download.suggested_filename == f"flagstone-case-{cid}-goaml.xml"
            target = tmp_path / download.suggested_filename
            download.save_as(target)
            report = target.read_bytes()
            goaml.validate(report)
            assert f"FLAGSTONE-CASE-{cid}".encode() in report
            # The download is the report that was approved: the SHA-256 recorded then (the report
            # itself rests encrypted) and the one the page shows.
            with s.ov.engine.connect() as con:
                state = con.execute(select(cases.c.state).where(cases.c.id == cid)).scalar_one()
                stored = con.execute(select(proposals.c.report_sha256).where(proposals.c.case_id == cid)).scalar_one()
            assert state == "approved" and stored == hashlib.sha256(report).hexdigest()
            expect(page.locator("#proposal-version")).to_contain_text(stored)

            # 6. an analyst of another team asking for the case by its id gets "Not found".
            log_out(page, base)
            log_in(page, base, "pat")
            expect(page).to_have_url(f"{base}/queue")
            assert cid not in {case_id(r) for r in queue_rows(page)}
            response = page.goto(f"{base}/cases/{cid}")
            assert response is not None and response.status == 404
            expect(page.locator("h1")).to_have_text("Not found")
            expect(page.locator("#error-message")).to_have_text(f"no case {cid}")
            body = page.content()
            for secret in (subject, shown, case.reason, case.rule_id, PROPOSAL, *parties):
                assert secret not in body
            expect(page.locator("#evidence, #parties, svg.network")).to_have_count(0)
            shoot(page, shots, "07-other-team-404.png")
            log_out(page, base)

            # 7. five wrong passwords lock abe out: the right one is then refused as well.
            for _ in range(5):
                log_in(page, base, "abe", WRONG)
                expect(page.locator("#login-error")).to_have_text("wrong user name or password")
            log_in(page, base, "abe")
            expect(page.locator("#login-error")).to_contain_text("locked")
            expect(page.locator("#logout")).to_have_count(0)
            assert "flagstone_session" not in {c["name"] for c in context.cookies()}
            shoot(page, shots, "08-locked.png")
        finally:
            context.close()
            browser.close()

    for name in SHOTS:
        assert_png(shots / name)
    # The pages must live within their own Content-Security-Policy: what it blocks is not shown.
    assert not csp_violations, "\n".join(dict.fromkeys(csp_violations))
