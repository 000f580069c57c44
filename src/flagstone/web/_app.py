"""Routes of the case review UI. Every page needs a session; every POST needs the CSRF token;
every case goes through :mod:`flagstone.oversight.cases`, which checks rights and audits."""

# No ``from __future__ import annotations``: FastAPI reads these signatures at run time.

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select

from flagstone.alerts import format_value
from flagstone.audit.events import AuthorisationFailed
from flagstone.errors import InputError
from flagstone.oversight import cases as case_ops
from flagstone.oversight import users as user_ops
from flagstone.oversight.context import Oversight, utcnow
from flagstone.oversight.roles import REVIEWERS, ROLES, allowed
from flagstone.oversight.schema import audit_entries, users
from flagstone.oversight.workflow import CLOSED, WorkflowError
from flagstone.web._network import network_svg
from flagstone.web._security import (
    HEADERS,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfFailure,
    NotLoggedIn,
    Session,
    new_login_csrf,
    same_origin,
    set_cookie,
    tokens_match,
)

HERE = Path(str(files("flagstone.web")))
QUEUE_PAGE = 200  # cases per page of the queue
CASE_ACTIONS = ("comment", "assign", "escalate", "dismiss", "propose", "reject", "approve", "file")
# What the banner says after an action; only these fixed texts, whatever the link's ?done= holds.
FLASH = {
    "comment": "Comment added.",
    "assign": "Case assigned.",
    "escalate": "Case escalated.",
    "dismiss": "Case dismissed.",
    "propose": "Report proposed. A second supervisor must approve it.",
    "reject": "Report sent back.",
    "approve": "Report approved. The goAML XML can be downloaded.",
    "file": "Report marked as filed.",
    "reveal": "Identity revealed for this case. The reveal and its reason are in the audit log.",
    "added": "User added.",
    "unlock": "User unlocked.",
    "disable": "User disabled.",
    "enable": "User enabled.",
}


def create_web_app(ov: Oversight) -> FastAPI:
    app = FastAPI(title="Flagstone case review", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["number"] = _number
    secure = ov.config.security.secure_cookies

    def render(request: Request, name: str, session: Session | None, code: int = 200, **ctx: Any) -> HTMLResponse:
        user = session.user if session else None
        html = env.get_template(name).render(
            user=user,
            csrf=session.csrf if session else "",
            can=(lambda action: user is not None and allowed(user.role, action)),
            flash=FLASH.get(request.query_params.get("done", "")),
            age=_age,
            days_left=_days_left,
            **ctx,
        )
        return HTMLResponse(html, status_code=code)

    def current(request: Request) -> Session:
        token = request.cookies.get(SESSION_COOKIE)
        found = user_ops.session_user(ov, token)
        if found is None or token is None:
            raise NotLoggedIn()
        return Session(found[0], found[1], token)

    async def checked(request: Request, session: Annotated[Session, Depends(current)]) -> Session:
        """The session of a state-changing request, after its CSRF token and origin are checked."""
        form = await request.form()
        if not same_origin(request):
            raise CsrfFailure("request from another site")
        if not tokens_match(str(form.get("csrf_token") or ""), session.csrf):
            raise CsrfFailure("missing or wrong CSRF token")
        request.state.session = session
        return session

    Current = Annotated[Session, Depends(current)]
    Checked = Annotated[Session, Depends(checked)]

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(NotLoggedIn)
    async def to_login(request: Request, _exc: NotLoggedIn) -> Response:
        if request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        return render(request, "error.html", None, 401, status=401, title="Not logged in", message="Log in first.",
                      back="/login")  # fmt: skip

    @app.exception_handler(CsrfFailure)
    async def csrf_failed(request: Request, exc: CsrfFailure) -> Response:
        session = getattr(request.state, "session", None)
        who = session.user.username if session else "anonymous"
        ov.audit.record(who, AuthorisationFailed(request.url.path, request.method, f"CSRF check: {exc.reason}"))
        return render(request, "error.html", None, 403, status=403, title="Refused", message=f"Refused: {exc.reason}.")

    def refused(request: Request, session: Session, exc: Exception) -> HTMLResponse:
        if isinstance(exc, case_ops.NotFound):
            return render(request, "error.html", session, 404, status=404, title="Not found", message=str(exc))
        if isinstance(exc, case_ops.Forbidden):
            return render(request, "error.html", session, 403, status=403, title="Not allowed", message=str(exc))
        return render(request, "error.html", session, 409, status=409, title="Not possible", message=str(exc),
                      back=request.url.path.rsplit("/", 1)[0])  # fmt: skip

    # -- log-in ---------------------------------------------------------------------------------

    def login_form(request: Request, code: int = 200, **ctx: Any) -> HTMLResponse:
        """The log-in page with a fresh double-submit token, in the form and in its cookie."""
        token = new_login_csrf()
        page = render(request, "login.html", None, code, login_csrf=token, **ctx)
        set_cookie(page, LOGIN_CSRF_COOKIE, token, secure=secure, max_age=3600)
        return page

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        return login_form(request)

    @app.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not same_origin(request) or expected is None or not tokens_match(csrf_token, expected):
            raise CsrfFailure("log-in form without its CSRF token")
        try:
            user = user_ops.authenticate(ov, username, password)
        except user_ops.LoginError as exc:
            return login_form(request, 401, error=str(exc), username=username)
        token, _csrf = user_ops.start_session(ov, user)
        response: Response = RedirectResponse(_home(user.role), status_code=303)
        set_cookie(response, SESSION_COOKIE, token, secure=secure, max_age=ov.config.security.session_hours * 3600)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @app.post("/logout")
    def logout(session: Checked) -> Response:
        user_ops.end_session(ov, session.token, session.user)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/")
    def home(session: Current) -> Response:
        return RedirectResponse(_home(session.user.role), status_code=303)

    # -- cases ----------------------------------------------------------------------------------

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(
        request: Request,
        session: Current,
        state: str = "active",
        rule: str = "",
        severity: str = "",
        sort: str = "severity",
        page: int = 1,
    ) -> Response:
        limit, page = QUEUE_PAGE, max(page, 1)
        by = {"rule": rule or None, "severity": severity or None}
        try:
            rows = case_ops.queue(
                ov, session.user, state=state, **by, sort=sort, limit=limit, offset=(page - 1) * limit
            )
        except case_ops.Refusal as exc:
            return refused(request, session, exc)
        total = case_ops.queue_size(ov, session.user, state=state, **by)
        f = {"state": state, "rule": rule, "severity": severity, "sort": sort}
        pages = max((total + limit - 1) // limit, 1)
        shown = {"total": total, "page": page, "pages": pages, "first": (page - 1) * limit}
        return render(request, "queue.html", session, rows=rows, f=f, overdue=_overdue, **shown)

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    def case_page(request: Request, session: Current, case_id: int) -> Response:
        try:
            view = case_ops.view_case(ov, session.user, case_id)
        except case_ops.Refusal as exc:
            return refused(request, session, exc)
        case = view.case
        with ov.engine.connect() as con:
            members = list(
                con.execute(
                    select(users.c.username)
                    .where(users.c.team == case["team"], users.c.role.in_(REVIEWERS), users.c.active.is_(True))
                    .order_by(users.c.username)
                ).scalars()
            )
        return render(
            request,
            "case.html",
            session,
            c=case,
            view=view,
            people=view.people,
            network=Markup(network_svg(view.evidence, case["group_key"])),
            closed=CLOSED,
            overdue=case["state"] not in CLOSED and case["deadline"] < utcnow(),
            reviewer=session.user.role in REVIEWERS,
            team_members=members,
            viewers=sorted(Counter(h["actor"] for h in view.history if h["action"] == "alert_viewed").items()),
        )

    def case_action(action: str) -> Callable[..., Response]:
        def handler(
            request: Request,
            session: Checked,
            case_id: int,
            text: Annotated[str, Form()] = "",
            reason: Annotated[str, Form()] = "",
            note: Annotated[str, Form()] = "",
            body: Annotated[str, Form()] = "",
            assignee: Annotated[str, Form()] = "",
        ) -> Response:
            words = text or reason or note or body
            try:
                case_ops.act(ov, session.user, case_id, action, words, assignee or None)
            except (case_ops.Refusal, WorkflowError) as exc:
                return refused(request, session, exc)
            return RedirectResponse(f"/cases/{case_id}?done={action}", status_code=303)

        handler.__name__ = f"case_{action}"
        return handler

    for action in CASE_ACTIONS:
        app.post(f"/cases/{{case_id}}/{action}")(case_action(action))

    @app.post("/cases/{case_id}/reveal")
    def reveal(
        request: Request,
        session: Checked,
        case_id: int,
        pseudonym: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        try:
            case_ops.reveal(ov, session.user, case_id, pseudonym, reason)
        except (case_ops.Refusal, WorkflowError) as exc:
            return refused(request, session, exc)
        return RedirectResponse(f"/cases/{case_id}?done=reveal", status_code=303)

    @app.get("/cases/{case_id}/report.xml")
    def report(request: Request, session: Current, case_id: int) -> Response:
        try:
            data = case_ops.report_xml(ov, session.user, case_id)
        except (case_ops.Refusal, WorkflowError) as exc:
            return refused(request, session, exc)
        name = f"flagstone-case-{case_id}-goaml.xml"
        return Response(data, media_type="application/xml",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    # -- audit and users ------------------------------------------------------------------------

    def lacks(request: Request, session: Session, action: str) -> Response | None:
        """The audited refusal page when the user's role may not take ``action``; None when it may."""
        if allowed(session.user.role, action):
            return None
        role = session.user.role
        exc = case_ops.Forbidden(
            f"a user with the role {role} may not {action.replace('_', ' ')}", request.url.path, request.method, role
        )
        ov.audit.record(session.user.username, exc.event)
        return refused(request, session, exc)

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, session: Current, action: str = "") -> Response:
        if (refusal := lacks(request, session, "view_audit")) is not None:
            return refusal
        query = select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(300)
        if action:
            query = query.where(audit_entries.c.action == action)
        with ov.engine.connect() as con:
            entries = [dict(r._mapping) for r in con.execute(query)]
        return render(request, "audit.html", session, entries=entries, action=action, result=None)

    @app.post("/audit/verify", response_class=HTMLResponse)
    def audit_verify(request: Request, session: Checked) -> Response:
        from flagstone.audit.events import AuditVerified

        if (refusal := lacks(request, session, "view_audit")) is not None:
            return refusal
        result = ov.audit.verify()
        ov.audit.record(session.user.username, AuditVerified(result.entries, result.ok, tuple(result.problems)))
        with ov.engine.connect() as con:
            entries = [
                dict(r._mapping)
                for r in con.execute(select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(300))
            ]
        return render(request, "audit.html", session, entries=entries, action="", result=result)

    @app.get("/admin/users", response_class=HTMLResponse)
    def users_page(request: Request, session: Current) -> Response:
        if (refusal := lacks(request, session, "manage_users")) is not None:
            return refusal
        return render(request, "users.html", session, users=user_ops.list_users(ov), roles=ROLES)

    @app.post("/admin/users")
    def add_user(
        request: Request,
        session: Checked,
        username: Annotated[str, Form()] = "",
        display_name: Annotated[str, Form()] = "",
        role: Annotated[str, Form()] = "",
        team: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        if (refusal := lacks(request, session, "manage_users")) is not None:
            return refusal
        try:
            user_ops.create_user(ov, session.user.username, username, password, role, team, display_name or None)
        except InputError as exc:
            return refused(request, session, WorkflowError(exc.message))
        return RedirectResponse("/admin/users?done=added", status_code=303)

    def user_change(change: str) -> Callable[..., Response]:
        def handler(request: Request, session: Checked, username: str) -> Response:
            if (refusal := lacks(request, session, "manage_users")) is not None:
                return refusal
            try:
                if change == "unlock":
                    user_ops.unlock(ov, session.user.username, username)
                else:
                    user_ops.set_active(ov, session.user.username, username, change == "enable")
            except InputError as exc:
                return refused(request, session, WorkflowError(exc.message))
            return RedirectResponse(f"/admin/users?done={change}", status_code=303)

        handler.__name__ = f"user_{change}"
        return handler

    for change in ("unlock", "disable", "enable"):
        app.post(f"/admin/users/{{username}}/{change}")(user_change(change))

    return app


def _number(value: Any) -> str:
    """A value of an alert the way the reason writes it (16,307.27; 3)."""
    if isinstance(value, str):
        try:
            value = int(value) if value.lstrip("-").isdigit() else Decimal(value)
        except ArithmeticError:
            return value
    return format_value(value)


def _home(role: str) -> str:
    return {"auditor": "/audit", "admin": "/admin/users"}.get(role, "/queue")


def _age(when: datetime) -> str:
    days = (utcnow() - when).days
    return "today" if days <= 0 else f"{days} d ago"


def _days_left(deadline: datetime) -> str:
    days = (deadline - utcnow()).days
    return f"{days} d left" if days >= 0 else f"{-days} d overdue"


def _overdue(c: Any) -> bool:
    return c.state not in CLOSED and c.deadline < utcnow()


__all__ = ["create_web_app"]
