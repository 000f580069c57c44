"""``flagstone serve`` and ``flagstone keys``: the real-time scoring service on the command line.

The web stack is imported only when these commands run.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer

from flagstone.cli._common import StoreOpt, err, friendly, out
from flagstone.errors import InputError

FAILED = 3  # exit status when the service stopped on a failure it cannot recover from in place

keys_app = typer.Typer(
    name="keys",
    help="API keys of the scoring service (shown once, stored hashed).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@friendly
def serve(
    rules: Annotated[list[Path], typer.Option("--rules", "-r", help="Rule files or pack folders (repeatable).")],
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source", "-s", help="Name of a source that posts canonical events (docs/events.md); repeatable."
        ),
    ] = None,
    mapping: Annotated[
        list[Path] | None,
        typer.Option(
            "--mapping", "-m", help="Events mapping of a source that posts its own records (slower); repeatable."
        ),
    ] = None,
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    lateness: Annotated[
        str, typer.Option(help="How far behind the newest event an event may be and still be tested (e.g. 1h).")
    ] = "1h",
    params: Annotated[Path | None, typer.Option("--params", help="YAML of per-deployment thresholds.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override one threshold: RULE.PARAM=VALUE.")] = None,
    skip_unsupported: Annotated[
        bool, typer.Option(help="Run the other rules when some cannot run in real time (instead of refusing).")
    ] = False,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-body-bytes",
            min=1024,
            help="Largest request body accepted, in bytes; larger ones get 413. Default: 10 MiB (10485760).",
        ),
    ] = None,
) -> None:
    """Score events as they happen: POST /v1/events answers with the alerts each event fires.

    The same rules as `flagstone scan`, evaluated incrementally in memory; every accepted event is
    stored before it is answered, and the state is rebuilt from the store on start. See
    docs/serve.md for the API; keys come from `flagstone keys create`.

    Exits with status 3 when the service fails in a way it cannot recover from in place (it cannot
    write its intake log): run it under a supervisor that restarts it.
    """
    from datetime import timedelta

    import uvicorn

    from flagstone.engines.realtime import check_supported
    from flagstone.errors import UnsupportedError
    from flagstone.ingest import load_mapping
    from flagstone.rules import load_rules
    from flagstone.rules.reader import parse_duration
    from flagstone.serve import DEFAULT_BODY_LIMIT, ScoringService, create_app

    try:
        late = timedelta(microseconds=parse_duration(lateness))
    except ValueError as exc:
        raise InputError(str(exc), field="--lateness", value=lateness) from exc
    ruleset = load_rules(rules, params_file=params, overrides=set_ or [])
    runnable = []
    for rule in ruleset:
        try:
            check_supported(rule)
        except UnsupportedError as exc:
            if not skip_unsupported:
                raise InputError(f"{exc}; leave it to `flagstone scan`, or pass --skip-unsupported") from exc
            err.print(f"skipped: {exc}", highlight=False)
            continue
        runnable.append(rule)
    mappings = [load_mapping(m) for m in mapping or []]
    err.print("rebuilding the real-time state from the store ...", highlight=False)
    from flagstone.audit.events import IntakeSetAside, Scanned
    from flagstone.oversight.activity import record, service_hook
    from flagstone.serve import SetAside
    from flagstone.store import resolve_store_path

    store_path = resolve_store_path(store)
    server: uvicorn.Server | None = None

    def set_aside(aside: SetAside) -> None:
        event = IntakeSetAside(aside.segment, str(aside.moved_to), aside.lines, aside.kept, aside.reason)
        record(store_path, [event], actor="service")

    def stop() -> None:  # from the writer thread: uvicorn checks the flag and shuts down
        if server is not None:
            server.should_exit = True

    service = ScoringService(
        store,
        runnable,
        mappings,
        canonical=source or [],
        lateness=late,
        on_absorbed=service_hook(store_path),
        on_set_aside=set_aside,
        on_failure=stop,
    )
    record(store_path, [Scanned(f"serve-{service.scan_id}", "realtime", tuple(r.meta.id for r in runnable), 0)])
    err.print(
        f"{len(runnable)} rules, {service.replayed:,} stored events replayed; "
        f"listening on http://{host}:{port} (API docs at /docs)",
        highlight=False,
    )
    gc.freeze()  # the rebuilt state is long-lived: keep it out of the collector's full passes
    config = uvicorn.Config(
        create_app(service, max_body_bytes=max_body_bytes or DEFAULT_BODY_LIMIT),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,  # a stop never waits on a request for ever
    )
    server = uvicorn.Server(config)
    if service.failure is not None:  # failed while starting up
        server.should_exit = True
    server.run()
    if service.failure is not None:
        err.print(f"flagstone serve: stopped: {service.failure}", highlight=False)
        raise typer.Exit(FAILED)


@keys_app.command("create")
@friendly
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who or what will use the key (e.g. payments-gateway).")],
    store: StoreOpt = None,
) -> None:
    """Make a key and print it once; only its hash is stored."""
    from flagstone.serve import create_key

    key = create_key(store, name)
    err.print("the key (shown only now; keep it secret):", highlight=False)
    print(key)


@keys_app.command("list")
@friendly
def keys_list(store: StoreOpt = None) -> None:
    """Key ids, names and dates (never the keys themselves)."""
    from flagstone.serve import list_keys

    for k in list_keys(store):
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        out.print(f"{k.key_id}  {k.name}  created {k.created_at}  {state}", highlight=False)


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (fsk_<id>_...).")], store: StoreOpt = None
) -> None:
    """Refuse a key from now on (a running service notices within a second)."""
    from flagstone.serve import revoke_key

    revoke_key(store, key_id)
    out.print(f"key {key_id} revoked")
