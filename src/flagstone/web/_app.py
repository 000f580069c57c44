"""Routes of the case review UI. Every page needs a session; every POST needs the CSRF token;
every case goes through :mod:`flagstone.oversight.cases`, which checks rights and audits.

A request that names nothing (a case id no database can hold, a page past the end) is a 404,
and one that is malformed (a page that is not a number) a 422, both audited for a user with a
session like any refused request; an error of our own is a 500 page from :mod:`._guard`.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at run time.

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select
from starlette.exceptions import HTTPException

from flagstone.alerts import format_value
from flagstone.audit.events import AuthorisationFailed, RequestFailed, SingleAdminMode
from flagstone.errors import InputError
from flagstone.oversight import cases as case_ops
from flagstone.oversight import users as user_ops
from flagstone.oversight.context import Oversight, cli_actor
from flagstone.oversight.grants import NoSuchGrant
from flagstone.oversight.roles import PRIVILEGED, REVIEWERS, ROLES, allowed
from flagstone.oversight.schema import audit_entries, users, utcnow
from flagstone.oversight.workflow import CLOSED, NotPermitted, WorkflowError
from flagstone.web._guard import Guard, Scope
from flagstone.web._network import network_svg
from flagstone.web._security import (
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
MAX_ID = 2**31 - 1  # the largest id an Integer column holds on both databases
# A case id in a path: anything else names no case (404) instead of failing in the database.
CaseId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
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
    "requested": "Recorded as a pending grant: the role takes effect once a second admin approves it.",
    "role": "Role changed.",
    "granted": "Grant approved: the role has taken effect.",
    "refused": "Grant refused.",
    "unlock": "User unlocked.",
    "disable": "User disabled.",
    "enable": "User enabled.",
    "password": "Password changed. Your other sessions have ended.",
}


def create_web_app(ov: Oversight) -> FastAPI:
    app = FastAPI(title="Flagstone case review", docs_url=None, redoc_url=None, openapi_url=None)

    def failed(scope: Scope, exc: BaseException, ref: str) -> None:
        event = RequestFailed(str(scope.get("path", "")), str(scope.get("method", "")), f"{ref}: {type(exc).__name__}")
        ov.audit.record("system", event)

    app.add_middleware(Guard, on_error=failed)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["number"] = _number
    secure = ov.config.security.secure_cookies
    single_admin = ov.config.security.single_admin
    if single_admin:  # the audit log says so as well as every page
        ov.audit.record(cli_actor(), SingleAdminMode(ov.config.path or "(built-in defaults)"))

    def render(request: Request, name: str, session: Session | None, code: int = 200, **ctx: Any) -> HTMLResponse:
        user = session.user if session else None
        html = env.get_template(name).render(
            user=user,
            csrf=session.csrf if session else "",
            can=(lambda action: user is not None and allowed(user.role, action)),
            flash=FLASH.get(request.query_params.get("done", "")),
            single_admin=single_admin,
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
        session = Session(found[0], found[1], token)
        request.state.session = session  # for the error pages and their audit entries
        return session

    async def checked(request: Request, session: Annotated[Session, Depends(current)]) -> Session:
        """The session of a state-changing request, after its CSRF token and origin are checked."""
        form = await request.form()
        if not same_origin(request):
            raise CsrfFailure("request from another site")
        if not tokens_match(str(form.get("csrf_token") or ""), session.csrf):
            raise CsrfFailure("missing or wrong CSRF token")
        return session

    Current = Annotated[Session, Depends(current)]
    Checked = Annotated[Session, Depends(checked)]

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

    def bad_request(request: Request, code: int, message: str) -> Response:
        """404 or 422 for a request that names nothing or is malformed; audited when a session made it
        (a request without one gets no entry, so that nobody anonymous grows the log)."""
        session: Session | None = getattr(request.state, "session", None)
        if session is not None:
            event = AuthorisationFailed(request.url.path, request.method, f"{code}: {message}")
            ov.audit.record(session.user.username, event)
        title = "Not found" if code == 404 else "Malformed request"
        return render(request, "error.html", session, code, status=code, title=title, message=message)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        # A path that does not parse names no page; a query or form that does not is malformed.
        code = 404 if any(e.get("loc", ("",))[0] == "path" for e in errors) else 422
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        given = str(first.get("input", ""))
        given = given if len(given) <= 40 else f"{given[:40]}… ({len(given):,} characters)"
        return bad_request(request, code, f"{where} {given!r}: {first.get('msg', 'not valid')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Starlette's own refusals (no such route, wrong method, a body too large) as pages."""
        titles = {404: "Not found", 405: "Not allowed", 413: "Too large"}
        message = "No such page." if exc.status_code == 404 else str(exc.detail)
        page = render(request, "error.html", None, exc.status_code, status=exc.status_code,
                      title=titles.get(exc.status_code, "Refused"), message=message)  # fmt: skip
        for k, v in (exc.headers or {}).items():
            page.headers[k] = v
        return page

    def refused(request: Request, session: Session, exc: Exception) -> HTMLResponse:
        if isinstance(exc, case_ops.NotFound):
            return render(request, "error.html", session, 404, status=404, title="Not found", message=str(exc))
        if isinstance(exc, case_ops.Forbidden):
            return render(request, "error.html", session, 403, status=403, title="Not allowed", message=str(exc))
        return render(request, "error.html", session, 409, status=409, title="Not possible", message=str(exc),
                      back=request.url.path.rsplit("/", 1)[0])  # fmt: skip

    # -- log-in ---------------------------------------------------------------------------------

    def login_form(request: Request, code: int = 200, retry_after: int | None = None, **ctx: Any) -> HTMLResponse:
        """The log-in page with a fresh double-submit token, in the form and in its cookie."""
        token = new_login_csrf()
        page = render(request, "login.html", None, code, login_csrf=token, **ctx)
        set_cookie(page, LOGIN_CSRF_COOKIE, token, secure=secure, max_age=3600)
        if retry_after is not None:
            page.headers["Retry-After"] = str(retry_after)
        return page

    def login_refused(request: Request, exc: user_ops.LoginError, username: str = "") -> HTMLResponse:
        """The answer to a failed log-in: the same for every name that failed the same way."""
        shown = username[: user_ops.MAX_USERNAME]
        if isinstance(exc, user_ops.LoginThrottled):
            return login_form(request, 429, retry_after=exc.retry_after, error=str(exc), username=shown)
        return login_form(request, 401, error=str(exc), username=shown)

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
        client = request.client.host if request.client else None
        try:
            user_ops.check_address(ov, client)  # first: a locked address costs no hashing and no entry
        except user_ops.LoginThrottled as exc:
            return login_refused(request, exc)
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not same_origin(request) or expected is None or not tokens_match(csrf_token, expected):
            user_ops.address_failed(ov, client)
            raise CsrfFailure("log-in form without its CSRF token")
        try:
            user = user_ops.authenticate(ov, username, password, client)
        except user_ops.LoginError as exc:
            return login_refused(request, exc, username)
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

    @app.get("/account", response_class=HTMLResponse)
    def account_page(request: Request, session: Current) -> Response:
        return render(request, "account.html", session)

    @app.post("/account/password")
    def change_password(
        request: Request,
        session: Checked,
        current_password: Annotated[str, Form()] = "",
        new_password: Annotated[str, Form()] = "",
        repeat_password: Annotated[str, Form()] = "",
    ) -> Response:
        """Every session of the user ends, this one too; the browser that asked gets a new one."""
        if new_password != repeat_password:
            return render(request, "account.html", session, 422, error="The two new passwords differ.")
        client = request.client.host if request.client else None
        try:
            user_ops.change_password(ov, session.user, current_password, new_password, client)
        except user_ops.LoginThrottled as exc:
            page = render(request, "account.html", session, 429, error=str(exc))
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        except user_ops.LoginError as exc:
            return render(request, "account.html", session, 403, error=str(exc))
        except InputError as exc:
            return render(request, "account.html", session, 422, error=exc.message)
        token, _csrf = user_ops.start_session(ov, session.user)
        response = RedirectResponse("/account?done=password", status_code=303)
        set_cookie(response, SESSION_COOKIE, token, secure=secure, max_age=ov.config.security.session_hours * 3600)
        return response

    # -- cases ----------------------------------------------------------------------------------

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(
        request: Request,
        session: Current,
        state: str = "active",
        rule: str = "",
        severity: str = "",
        sort: str = "",
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        limit = QUEUE_PAGE
        sort = sort or case_ops.default_sort(ov)
        by = {"rule": rule or None, "severity": severity or None}
        total = case_ops.queue_size(ov, session.user, state=state, **by)
        pages = max((total + limit - 1) // limit, 1)
        if page > pages and allowed(session.user.role, "view_cases"):
            # Before the query: a page past the end (10**30, say) is no offset for the database.
            return bad_request(request, 404, f"no page {page:,} of the queue: it has {pages:,}")
        try:
            offset = (min(page, pages) - 1) * limit
            rows = case_ops.queue(ov, session.user, state=state, **by, sort=sort, limit=limit, offset=offset)
        except case_ops.Refusal as exc:
            return refused(request, session, exc)
        f = {"state": state, "rule": rule, "severity": severity, "sort": sort}
        shown = {"total": total, "page": page, "pages": pages, "first": (page - 1) * limit}
        return render(request, "queue.html", session, rows=rows, f=f, overdue=_overdue, **shown)

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    def case_page(request: Request, session: Current, case_id: CaseId) -> Response:
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
            network=Markup(network_svg(view.evidence + view.later, case["group_key"])),
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
            case_id: CaseId,
            text: Annotated[str, Form()] = "",
            reason: Annotated[str, Form()] = "",
            note: Annotated[str, Form()] = "",
            body: Annotated[str, Form()] = "",
            assignee: Annotated[str, Form()] = "",
            proposal: Annotated[str, Form()] = "",
        ) -> Response:
            words = text or reason or note or body
            # The approve and send-back forms name the proposal version the page showed; an approval
            # must, a send-back is held to it when it does.
            seen = proposal if action == "approve" else (proposal or None) if action == "reject" else None
            try:
                case_ops.act(ov, session.user, case_id, action, words, assignee or None, seen=seen)
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
        case_id: CaseId,
        pseudonym: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        try:
            case_ops.reveal(ov, session.user, case_id, pseudonym, reason)
        except (case_ops.Refusal, WorkflowError) as exc:
            return refused(request, session, exc)
        return RedirectResponse(f"/cases/{case_id}?done=reveal", status_code=303)

    @app.get("/cases/{case_id}/report.xml")
    def report(request: Request, session: Current, case_id: CaseId) -> Response:
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
        return render(request, "users.html", session, users=user_ops.list_users(ov), roles=ROLES,
                      grants=user_ops.list_grants(ov), privileged=PRIVILEGED)  # fmt: skip

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
            made = user_ops.create_user(ov, session.user.username, username, password, role, team, display_name or None)
        except InputError as exc:
            return refused(request, session, WorkflowError(exc.message))
        done = "requested" if isinstance(made, user_ops.Grant) else "added"
        return RedirectResponse(f"/admin/users?done={done}", status_code=303)

    @app.post("/admin/users/{username}/role")
    def change_role(request: Request, session: Checked, username: str, role: Annotated[str, Form()] = "") -> Response:
        if (refusal := lacks(request, session, "manage_users")) is not None:
            return refusal
        try:
            made = user_ops.set_role(ov, session.user.username, username, role)
        except InputError as exc:
            return refused(request, session, WorkflowError(exc.message))
        done = "requested" if isinstance(made, user_ops.Grant) else "role"
        return RedirectResponse(f"/admin/users?done={done}", status_code=303)

    @app.post("/admin/grants/{grant_id}/{decision}")
    def decide_grant(request: Request, session: Checked, grant_id: int, decision: str) -> Response:
        if (refusal := lacks(request, session, "manage_users")) is not None:
            return refusal
        try:
            if decision == "approve":
                user_ops.approve_grant(ov, session.user, grant_id)
            elif decision == "refuse":
                user_ops.refuse_grant(ov, session.user.username, grant_id)
            else:
                return render(request, "error.html", session, 404, status=404, title="Not found",
                              message=f"no such decision '{decision}'")  # fmt: skip
        except NotPermitted as exc:  # asked for it, or gets it: audited by approve_grant
            return render(request, "error.html", session, 403, status=403, title="Not allowed", message=str(exc))
        except NoSuchGrant as exc:  # audited like another team's case asked for by number
            missing = AuthorisationFailed(f"role grant #{grant_id}"[:80], decision, exc.message)
            ov.audit.record(session.user.username, missing)
            return render(request, "error.html", session, 404, status=404, title="Not found", message=exc.message)
        except InputError as exc:
            return refused(request, session, WorkflowError(exc.message))
        return RedirectResponse(f"/admin/users?done={'granted' if decision == 'approve' else 'refused'}",
                                status_code=303)  # fmt: skip

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
