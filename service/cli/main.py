"""The `warmzoo` command line: one verb per subcommand, each a thin wrapper."""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warmzoo.models.spec import ARMS, CELLS, TASK_INPUT_SIZES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from warmzoo.service.cli.client import Client
    from warmzoo.service.core.config import Settings

Command = Callable[[argparse.Namespace], int]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default, where it has one worth saying (not None or False),
    also for flags without a help text of their own."""

    @staticmethod
    def _has_default(action: argparse.Action) -> bool:
        shown = all(action.default is not hidden for hidden in (None, False, argparse.SUPPRESS))
        return shown and bool(action.option_strings)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._has_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return super()._get_help_string(action) if self._has_default(action) else action.help


class _Parser(argparse.ArgumentParser):
    """The parser of `warmzoo` and, through add_subparsers, of every verb: defaults in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _warmup(args: argparse.Namespace) -> int:
    """Warm a network up locally, no server: weights.safetensors + report.json in --out."""
    from tqdm import tqdm

    from warmzoo.models.device import resolve_device
    from warmzoo.models.network import build_network
    from warmzoo.models.spec import RNNSpec
    from warmzoo.models.tasks import make_task
    from warmzoo.models.vaa import measure_vaa
    from warmzoo.models.warmup import WarmupConfig, warmup
    from warmzoo.models.weights import weights_bytes

    spec = RNNSpec(**_spec_fields(args))
    input_size = spec.input_size
    config = WarmupConfig(steps=args.steps, learning_rate=args.learning_rate)
    task_params = {"input_size": input_size} if args.task == "gaussian" else {}
    data = make_task(args.task, args.seq_length, args.num_samples, seed=args.seed, **task_params)
    device = resolve_device(args.device)
    network = build_network(spec, seed=args.seed).to(device)

    started = time.perf_counter()
    vaa_before = measure_vaa(network, data.inputs, steps=args.vaa_steps, seed=args.seed)[0]
    with tqdm(total=config.steps, desc=f"warm-up {spec.cell}", unit="step", disable=args.quiet) as bar:

        def progress(step: int, total: int, value: float) -> None:
            bar.update(1)
            bar.set_postfix(vaa_star=f"{value:.3f}")

        result = warmup(network, data.inputs, config, seed=args.seed, progress=progress)
    vaa_after = measure_vaa(network, data.inputs, steps=args.vaa_steps, seed=args.seed)[0]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.safetensors").write_bytes(weights_bytes(network))
    report = {
        "spec": spec.model_dump(),
        "warmup": config.model_dump(),
        "data": {"task": args.task, "seq_length": args.seq_length, "num_samples": args.num_samples},
        "seed": args.seed,
        "device": str(device),
        "vaa_steps": args.vaa_steps,
        "vaa_before": vaa_before,
        "vaa_after": vaa_after,
        "vaa_star_history": result.vaa_star_history,
        "seconds": time.perf_counter() - started,
        "warmup_seconds": result.seconds,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"VAA {vaa_before:.3f} -> {vaa_after:.3f}; wrote {out / 'weights.safetensors'} and {out / 'report.json'}")
    return 0


def _spec_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The RNNSpec fields of the flags; the task, when there is one, fixes the input size."""

    return {
        "cell": args.cell,
        "input_size": (TASK_INPUT_SIZES[args.task] if args.task else None) or args.input_size,
        "hidden_size": args.hidden_size,
        "num_layers": args.num_layers,
        "output_size": args.output_size,
        "double": args.double,
        "t_max": args.t_max,
    }


def _add_warmup_args(p: argparse.ArgumentParser, required: bool) -> None:
    """Spec, data and warm-up flags, shared by `warmup` (local) and `submit` (to a server)."""
    p.add_argument("--cell", choices=CELLS, required=required)
    p.add_argument("--hidden-size", type=int, required=required)
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--output-size", type=int, default=1)
    p.add_argument("--input-size", type=int, default=1, help="features per step (--task gaussian or a data set)")
    p.add_argument("--double", action="store_true", help="double layers (partial warm-up of the first halves)")
    p.add_argument("--t-max", type=float, default=600.0, help="chrono initialisation horizon")
    p.add_argument("--task", choices=sorted(TASK_INPUT_SIZES), required=required)
    p.add_argument("--seq-length", type=int, required=required)
    p.add_argument("--num-samples", type=int, default=512)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--learning-rate", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_warmup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warmup", help="warm up a network locally and write weights + report")
    _add_warmup_args(p, required=True)
    p.add_argument("--vaa-steps", type=int, default=10_000, help="S of the exact VAA before and after")
    p.add_argument("--out", required=True, help="directory for weights.safetensors and report.json")
    p.set_defaults(func=_warmup)


# -- the server side ----------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from WARMZOO_* variables; --data-dir, when given, wins."""
    from warmzoo.service.core.config import Settings

    return Settings(data_dir=args.data_dir) if args.data_dir else Settings()


def _log_to_stderr(settings: Settings, level: str | None = None) -> str:
    """JSON log lines on stderr at `level` (default: WARMZOO_LOG_LEVEL); returns the level used."""
    import os

    from warmzoo.service.core.logs import configure_logging

    if level is not None:
        os.environ["WARMZOO_LOG_LEVEL"] = level  # the worker processes inherit it
    level = level or settings.log_level
    configure_logging(level)
    return level


def _serve(args: argparse.Namespace) -> int:
    """Migrate, start the worker processes and the starter catalogue, then serve the API (in
    `api_processes` processes on one port)."""
    import signal
    import threading

    import uvicorn

    from warmzoo.service.api.app import create_app
    from warmzoo.service.core.gc_pauses import freeze_long_lived
    from warmzoo.service.jobs.executors import make_executor
    from warmzoo.service.registry.db import upgrade_database
    from warmzoo.service.security.auth import resolve_auth

    settings = _settings(args)
    level = _log_to_stderr(settings, args.log_level)
    settings = resolve_auth(settings, args.host)  # after the logging set-up: "auth is OFF" must be seen
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address
    settings = settings.model_copy(update={"grpc_address": f"{host}:{args.grpc_port}" if args.grpc_port else ""})
    if settings.api_processes > 1 and settings.sequence_store == "memory":
        sys.exit(
            f"warmzoo serve: WARMZOO_API_PROCESSES={settings.api_processes} needs WARMZOO_SEQUENCE_STORE=redis:"
            " the requests of one streaming sequence may reach any of the processes"
        )
    upgrade_database(settings)
    # uvicorn re-raises the SIGTERM it shut down on; exiting through `finally` stops the workers too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # log_config None: uvicorn's own records go through the JSON handler; the app writes the access log
    server: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": level}
    server.update(log_config=None, access_log=False)
    if settings.api_processes == 1:
        server["app"] = create_app(settings)
        freeze_long_lived()  # every module the server needs is imported by now
    else:
        _share_with_api_processes(settings)
        server.update(app="warmzoo.service.api.app:process_app", factory=True, workers=settings.api_processes)
    executor = make_executor(settings)
    executor.start()
    try:
        threading.Thread(target=_announce, args=(settings, args.host, args.port), name="starter", daemon=True).start()
        uvicorn.run(**server)
    finally:
        executor.stop()
    return 0


def _announce(settings: Settings, host: str, port: int) -> None:
    """Queue the starter catalogue (if enabled and the zoo is empty), then, once the server
    listens, print one line for people: where the UI and the API docs are, and what the
    catalogue is doing."""
    import socket

    from warmzoo.service.jobs.starter import catalogue_summary, seed_starter_catalogue

    if settings.starter_catalogue:
        seed_starter_catalogue(settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{shown}:{port}"
    for _ in range(600):  # up to a minute for uvicorn to bind
        try:
            socket.create_connection((shown, port), timeout=1.0).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        return
    print(f"warmzoo: the zoo's UI is at {url}/ and the API docs at {url}/docs; {catalogue_summary(settings)}.", flush=True)


def _share_with_api_processes(settings: Settings) -> None:
    """What each API process (`warmzoo.service.api.app.process_app`, started by uvicorn) reads from the
    environment: the settings as resolved here, and one directory where all of them keep
    their metrics, so that /metrics answers for the whole server whichever process serves it."""
    import os
    import shutil

    metrics_dir = settings.data_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counts of an earlier run are not this run's
    metrics_dir.mkdir(parents=True)
    os.environ.update(
        WARMZOO_DATA_DIR=str(settings.data_dir),
        WARMZOO_AUTH=settings.auth,
        WARMZOO_GRPC_ADDRESS=settings.grpc_address,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )


def _worker(args: argparse.Namespace) -> int:
    """Run queued jobs until SIGTERM/SIGINT, which hand the job in progress back to the queue."""
    import signal

    from warmzoo.service.jobs.worker import Worker
    from warmzoo.service.registry.db import upgrade_database

    settings = _settings(args)
    _log_to_stderr(settings)
    upgrade_database(settings)
    worker = Worker(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stopping.set())
    worker.serve(parent_pid=args.parent_pid)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    from warmzoo.service.registry.db import upgrade_database

    settings = _settings(args)
    upgrade_database(settings)
    print(f"{make_url(settings.database_url).render_as_string(hide_password=True)} is at the latest schema")
    return 0


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[Session]:
    """A session on the migrated registry database of --data-dir / WARMZOO_*, no server needed."""
    from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database

    settings = _settings(args)
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _keys_create(args: argparse.Namespace) -> int:
    """Print a new key on stdout (for `$(...)`); it is not stored, so it is shown only now."""
    from warmzoo.service.security.auth import create_key

    with _database(args) as session:
        try:
            row, key = create_key(session, args.owner, args.scope)
        except ValueError as exc:  # an owner name out of the allowed characters
            print(f"warmzoo keys create: {exc}", file=sys.stderr)
            return 1
    print(key)
    print(f"key {row.id} ({row.scope}) for {row.owner}: store it now, it is not shown again", file=sys.stderr)
    return 0


def _keys_ls(args: argparse.Namespace) -> int:
    from warmzoo.service.security.auth import list_keys

    with _database(args) as session:
        rows = [
            (k.id, k.owner, k.scope, f"{k.created_at:%Y-%m-%d %H:%M}", "revoked" if k.revoked_at else "active")
            for k in list_keys(session)
        ]
    print(_table(("ID", "OWNER", "SCOPE", "CREATED", "STATUS"), rows))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from warmzoo.service.security.auth import revoke_key

    with _database(args) as session:
        try:
            row = revoke_key(session, args.id)
        except LookupError as exc:
            print(f"warmzoo keys revoke: {exc}", file=sys.stderr)
            return 1
    print(f"key {row.id} of {row.owner} is revoked")
    return 0


def _add_keys(sub: argparse._SubParsersAction) -> None:
    from warmzoo.service.core.scopes import SCOPES

    keys = sub.add_parser("keys", help="API keys: create (shown once), ls, revoke").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("create", help="make a key and print it (only its hash is stored)")
    p.add_argument("--owner", required=True, help="who the key acts for; the models it publishes are theirs")
    p.add_argument("--scope", choices=SCOPES, required=True, help="read < write (jobs, uploads) < admin (any model)")
    _add_data_dir(p)
    p.set_defaults(func=_keys_create)
    p = keys.add_parser("ls", help="list keys (id, owner, scope, status; never the keys)")
    _add_data_dir(p)
    p.set_defaults(func=_keys_ls)
    p = keys.add_parser("revoke", help="refuse a key from now on")
    p.add_argument("id", help="the key's id (`keys ls`; the part after `wz_`)")
    _add_data_dir(p)
    p.set_defaults(func=_keys_revoke)


def _fsck(args: argparse.Namespace) -> int:
    """Report (and with --repair fix) rows without blobs, corrupt or orphan blobs, crash leftovers;
    exit 1 while anything is left unresolved."""
    from datetime import timedelta

    from warmzoo.service.registry.blobs import open_blob_store
    from warmzoo.service.registry.fsck import fsck

    settings = _settings(args)
    blobs = open_blob_store(settings.blob_store, s3_endpoint_url=settings.s3_endpoint_url)
    with _database(args) as session:
        report = fsck(session, blobs, repair=args.repair, grace=timedelta(seconds=args.grace_s))
    for finding in report.findings:
        print(finding.line())
    repaired = len(report.findings) - len(report.unresolved)
    print(
        f"checked {report.blobs} blobs and {report.rows} rows: {len(report.findings)} problems,"
        f" {repaired} repaired, {len(report.unresolved)} unresolved"
    )
    return 1 if report.unresolved else 0


def _add_fsck(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fsck", help="check the registry's rows against its blob store (and repair)")
    p.add_argument("--repair", action="store_true", help="fix what can be fixed (docs/usage.md says how)")
    p.add_argument(
        "--grace-s",
        type=float,
        default=3600,
        help="orphan blobs and temporary files younger than this are left alone: a write may be in flight",
    )
    _add_data_dir(p)
    p.set_defaults(func=_fsck)


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="embedded registry directory (default ./data, or WARMZOO_DATA_DIR)")


def _add_server_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the API and its worker process(es)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--grpc-port", type=int, default=8001, help="port of gRPC /v2 on the same host (default 8001; 0: no gRPC)"
    )
    _add_data_dir(p)
    p.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        help="for the server and its workers (default: WARMZOO_LOG_LEVEL, else info)",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("worker", help="run queued jobs (a worker of the embedded executor)")
    _add_data_dir(p)
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by `serve`: exit when it is gone
    p.set_defaults(func=_worker)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("upgrade", help="apply pending migrations")
    _add_data_dir(p)
    p.set_defaults(func=_db_upgrade)


# -- the client verbs ---------------------------------------------------------------------

FORMATS = {
    "safetensors": "weights.safetensors",
    "state_dict": "state_dict.pt",
    "onnx": "model.onnx",
    "cell": "cell.onnx",
    "card": "README.md",
    "torch": "torch.safetensors",
    "modeling": "modeling.py",
    "hf": "hf.zip",  # unpacked into a folder: the Hugging Face Hub layout
}


def _client(args: argparse.Namespace) -> Client:
    from warmzoo.service.cli.client import Client

    return Client(args.server, api_key=args.api_key)


def _warmup_body(args: argparse.Namespace) -> dict[str, Any]:
    from warmzoo.service.cli.client import parse_ref

    body: dict[str, Any] = {
        "warmup": {"steps": args.steps, "learning_rate": args.learning_rate},
        "seed": args.seed,
        "device": args.device,
    }
    if args.name:
        body["name"] = args.name
    if args.base:
        model, version = parse_ref(args.base)
        body["base"] = {"model": model, "version": version}
    if args.cell:
        body["spec"] = _spec_fields(args)
    if args.dataset:
        body["data"] = {"dataset": args.dataset}
    else:
        body["data"] = {"task": args.task, "seq_length": args.seq_length, "num_samples": args.num_samples}
    return body


def _follow(client: Client, job: dict[str, Any], name: str, quiet: bool) -> dict[str, Any]:
    """Follow a job with a progress bar per phase (and its place in the queue while it waits)
    until it ends; returns the ended job."""
    from tqdm import tqdm

    with tqdm(total=job["progress"]["total"], desc=name, unit="step", disable=quiet) as bar:
        phase = None
        for event, data in client.follow(job["id"]):
            if event == "queue" and data["position"] > 0:
                bar.write(f"queued: {_standing(data)}", file=sys.stderr)
            elif event == "progress":
                if data.get("phase") != phase:
                    phase = data.get("phase")
                    bar.reset(total=data["total"])
                    bar.set_description(f"{name} {(phase or 'queued').replace('_', ' ')}")
                bar.total = data["total"]
                bar.update(data["step"] - bar.n)
                if data["vaa_star"] is not None:
                    bar.set_postfix(vaa_star=f"{data['vaa_star']:.3f}")
            elif event == "status":
                job = data
    return job


def _failed(job: dict[str, Any]) -> bool:
    if job["status"] == "succeeded":
        return False
    reason = (job["error"] or {}).get("error", "canceled")
    print(f"job {job['id']} {job['status']}: {reason}", file=sys.stderr)
    return True


def _compare(args: argparse.Namespace) -> int:
    """Train a version and a cold initialisation of its spec alike on its task, on the server."""
    from warmzoo.service.cli.client import parse_ref

    name, version = parse_ref(args.ref)
    body = {"seeds": args.seeds, "steps": args.steps}
    with _client(args) as client:
        job = client.submit_compare(name, version, body)
        print(f"job {job['id']} {job['status']}", file=sys.stderr)
        if args.detach:
            print(job["id"])
            return 0
        job = _follow(client, job, f"{name}:{job['request']['version']}", args.quiet)
        if _failed(job):
            return 1
    s = job["result"]["summary"]
    print(
        f"{name}:{job['result']['version']}  test loss {s['warmed']['test_loss']:.4g} warmed,"
        f" {s['cold']['test_loss']:.4g} cold (chance {s['chance_loss']:.4g});"
        f" learned {s['warmed']['learned']}/{len(args.seeds)} warmed, {s['cold']['learned']}/{len(args.seeds)} cold"
    )
    return 0


def _submit(args: argparse.Namespace) -> int:
    """Queue a warm-up on the server and follow it with a progress bar until it ends."""
    if not args.base and not (args.cell and args.hidden_size):
        raise SystemExit("warmzoo submit: give --cell and --hidden-size, or --base NAME[:VERSION]")
    if not args.dataset and not (args.task and args.seq_length):
        raise SystemExit("warmzoo submit: give --task and --seq-length, or --dataset ID")
    with _client(args) as client:
        job = client.submit_warmup(_warmup_body(args), args.idempotency_key)
        print(f"job {job['id']} {job['status']}", file=sys.stderr)
        if args.detach:
            print(job["id"])
            return 0
        job = _follow(client, job, job["request"]["name"], args.quiet)
        if _failed(job):
            return 1
        result = job["result"]
        version = client.version(result["model"], str(result["version"]))
        metrics = version["metrics"]
        print(f"{result['model']}:{result['version']}  VAA {metrics['vaa_before']:.3f} -> {metrics['vaa_after']:.3f}")
    return 0


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


def _standing(queue: dict[str, Any]) -> str:
    """`position 2, starts in about 40 s, ends in about 2 min` (or why there is no estimate)."""
    if queue["starts_in_s"] is None:
        return f"position {queue['position']}; no estimate yet ({queue['basis']})"
    return (
        f"position {queue['position']}, starts in about {_seconds(queue['starts_in_s'])},"
        f" ends in about {_seconds(queue['ends_in_s'])}"
    )


def _jobs(args: argparse.Namespace) -> int:
    """The newest jobs with their state, phase, place in the queue and estimated start and end."""
    with _client(args) as client:
        jobs = client.jobs(status=args.status, limit=args.limit)
    rows = [
        (j["id"][:8], j["kind"], j["status"], (j["progress"].get("phase") or "-").replace("_", " "),
         f"{j['progress']['step']}/{j['progress']['total']}",
         "-" if j["queue"] is None else j["queue"]["position"] or "running",
         "-" if j["queue"] is None else _seconds(j["queue"]["starts_in_s"]),
         "-" if j["queue"] is None else _seconds(j["queue"]["ends_in_s"]),
         j["request"].get("name") or j["request"].get("model", "-"))  # fmt: skip
        for j in jobs
    ]
    print(_table(("ID", "KIND", "STATUS", "PHASE", "STEP", "POSITION", "STARTS IN", "ENDS IN", "MODEL"), rows))
    return 0


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _vaa(metrics: dict[str, Any]) -> str:
    before, after = metrics.get("vaa_before"), metrics.get("vaa_after")
    return "-" if after is None else f"{before:.3f} -> {after:.3f}" if before is not None else f"{after:.3f}"


def _ls(args: argparse.Namespace) -> int:
    """The zoo (one line per model), or the versions of one model."""
    with _client(args) as client:
        if args.name:
            rows = [
                (v["version"], v["spec"]["cell"], v["spec"]["hidden_size"], v["spec"]["num_layers"],
                 (v["data"] or {}).get("task", "-"), _vaa(v["metrics"]), ",".join(v["aliases"]), v["sha256"][:12],
                 v["created_at"][:19])  # fmt: skip
                for v in client.versions(args.name)
            ]
            print(_table(("VERSION", "CELL", "HIDDEN", "LAYERS", "TASK", "VAA", "ALIASES", "SHA256", "CREATED"), rows))
        else:
            rows = [
                (m["name"], m["versions"], m["latest"]["spec"]["cell"], m["latest"]["spec"]["hidden_size"],
                 m["latest"]["spec"]["num_layers"], _vaa(m["latest"]["metrics"]), m["updated_at"][:19])  # fmt: skip
                for m in client.models(cell=args.cell, task=args.task, q=args.q)
            ]
            print(_table(("NAME", "VERSIONS", "CELL", "HIDDEN", "LAYERS", "VAA", "UPDATED"), rows))
    return 0


def _pull(args: argparse.Namespace) -> int:
    """Download a file of a version into OUT/<name>/v<version>/, checked against its sha256; `hf`
    unpacks the Hugging Face Hub folder into OUT/<name>/v<version>/hf/."""
    from warmzoo.service.cli.client import parse_ref

    name, ref = parse_ref(args.ref)
    with _client(args) as client:
        number = str(client.version(name, ref)["version"])  # an alias names a number now; pull that one
        folder = Path(args.out) / name / f"v{number}"
        if args.format == "hf":
            path = client.download_unpacked(name, number, FORMATS["hf"], folder / "hf", force=args.force)
        else:
            path = client.download(name, number, FORMATS[args.format], folder, force=args.force)
    print(path)
    return 0


def _infer(args: argparse.Namespace) -> int:
    """Run sequences through a version on the server; prints the outputs as JSON."""
    import numpy as np

    source = Path(args.input)
    if source.suffix == ".npy":
        inputs = np.load(source, allow_pickle=False)
    else:
        inputs = np.asarray(json.loads(source.read_text()))
    inputs = inputs.astype(np.float32)
    if inputs.ndim == 2:  # one sequence [time, input_size]
        inputs = inputs[None]
    name, _, version = args.ref.partition(":")
    with _client(args) as client:
        answer = client.infer(name, version or None, inputs)
    outputs = {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"]) for o in answer["outputs"]}
    if args.out:
        np.save(args.out, outputs["output"])
        print(f"wrote output {list(outputs['output'].shape)} to {args.out}")
    else:
        print(json.dumps({name: array.tolist() for name, array in outputs.items()}))
    return 0


def _reporting(verb: Command) -> Command:
    """A refused request or an unreachable server ends the verb with the message, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        from warmzoo.service.cli.client import ClientError

        try:
            return verb(args)
        except ClientError as exc:
            print(f"warmzoo {args.command}: {exc}", file=sys.stderr)
            return 1

    return run


def _add_client_verbs(sub: argparse._SubParsersAction) -> None:
    import os

    from warmzoo.service.cli.client import DEFAULT_SERVER

    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--server", default=os.environ.get("WARMZOO_SERVER", DEFAULT_SERVER), help="warmzoo server URL")
    server.add_argument(
        "--api-key",
        default=os.environ.get("WARMZOO_API_KEY"),
        help="API key (default WARMZOO_API_KEY, which keeps it out of the process list)",
    )

    p = sub.add_parser("submit", parents=[server], help="warm up on a server and follow the job")
    _add_warmup_args(p, required=False)
    p.add_argument("--name", help="model to publish to (default: derived from the spec and task)")
    p.add_argument("--base", metavar="NAME[:VERSION]", help="warm up these stored weights instead of a fresh network")
    p.add_argument("--dataset", metavar="ID", help="an uploaded data set instead of --task")
    p.add_argument("--idempotency-key", help="a retry with the same key returns the same job")
    p.add_argument("--detach", action="store_true", help="print the job id and return at once")
    p.set_defaults(func=_reporting(_submit))

    p = sub.add_parser(
        "compare", parents=[server], help="train a version and a cold start alike on its task, on the server"
    )
    p.add_argument("ref", metavar="NAME[:VERSION]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per arm and seed (default: %(default)s)")
    p.add_argument("--steps", type=int, default=300, help="training steps per run (default: %(default)s)")
    p.add_argument("--detach", action="store_true", help="print the job id and return at once")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_reporting(_compare))

    p = sub.add_parser("jobs", parents=[server], help="the newest jobs: state, phase, queue position, estimated times")
    p.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "canceled"), help="only these")
    p.add_argument("--limit", type=int, default=20, help="how many, newest first (default: %(default)s)")
    p.set_defaults(func=_reporting(_jobs))

    p = sub.add_parser("ls", parents=[server], help="list the zoo, or the versions of one model")
    p.add_argument("name", nargs="?")
    p.add_argument("--cell", choices=CELLS)
    p.add_argument("--task", choices=sorted(TASK_INPUT_SIZES))
    p.add_argument("-q", help="text in the name or description")
    p.set_defaults(func=_reporting(_ls))

    p = sub.add_parser("pull", parents=[server], help="download a file of a version (sha256-checked)")
    p.add_argument("ref", metavar="NAME[:VERSION]")
    p.add_argument("--format", choices=sorted(FORMATS), default="safetensors", help="the file (hf: a folder)")
    p.add_argument("--out", default=".", help="directory; the file goes to OUT/NAME/vVERSION/")
    p.add_argument("--force", action="store_true", help="overwrite a file (or hf folder) that exists")
    p.set_defaults(func=_reporting(_pull))

    p = sub.add_parser("infer", parents=[server], help="run sequences through a version on the server")
    p.add_argument("ref", metavar="NAME[:VERSION]")
    p.add_argument("--input", required=True, help="[batch, time, input_size] (or [time, input_size]) as .npy or JSON")
    p.add_argument("--out", help="write the output [batch, time, output_size] to this .npy instead of printing JSON")
    p.set_defaults(func=_reporting(_infer))


def _reproduce(args: argparse.Namespace) -> int:
    """Cold versus warm training on one task: report.json, report.md and curves.png in --out."""
    import torch
    from tqdm import tqdm

    from warmzoo.models.reproduce import ReproductionConfig, markdown_table, run_reproduction, total_steps, write_report
    from warmzoo.models.training import TrainingConfig
    from warmzoo.models.warmup import WarmupConfig

    config = ReproductionConfig(
        task=args.task,
        seq_length=args.seq_length,
        cells=args.cells,
        arms=args.arms,
        seeds=args.seeds,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        t_max=args.t_max,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        vaa_steps=args.vaa_steps,
        training=TrainingConfig(
            steps=args.training_steps,
            eval_every=args.eval_every,
            vaa_steps=args.vaa_train_steps,
            vaa_estimates=args.vaa_train_estimates,
            vaa_replacement=args.vaa_train_estimates > 1,
        ),
        warmup=WarmupConfig(steps=args.warmup_steps, partial_freeze=args.partial_freeze),
        device=args.device,
    )
    torch.set_num_threads(args.threads)
    with tqdm(total=total_steps(config), desc="reproduce", unit="step", disable=args.quiet) as bar:

        def progress(steps: int, record: dict[str, Any] | None) -> None:
            bar.update(steps)
            if record is not None:
                bar.set_postfix_str(f"{record['cell']} {record['arm']} seed {record['seed']}: {record['test_loss']:.3f}")

        report = run_reproduction(config, jobs=args.jobs, threads=args.threads, progress=progress)
    report["arguments"] = {key: value for key, value in vars(args).items() if key != "func"}
    paths = write_report(report, Path(args.out))
    print(markdown_table(report) + "wrote " + ", ".join(str(p) for p in paths))
    return 0


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="train cold and warmed-up networks on a task and compare (paper's results)")
    p.add_argument("--task", choices=sorted(set(TASK_INPUT_SIZES) - {"gaussian"}), default="copy_first_input")
    p.add_argument("--seq-length", type=int, default=300)
    p.add_argument("--cells", nargs="+", choices=CELLS, default=["gru", "lstm", "brc", "nbrc"])
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["cold", "warm"], help="double-warm: partial warm-up")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--t-max", type=float, default=600.0, help="chrono initialisation horizon")
    p.add_argument("--training-steps", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=50, help="steps between test-loss and VAA measurements")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--vaa-steps", type=int, default=10_000, help="S of the exact VAA at init and after warm-up")
    p.add_argument("--vaa-train-steps", type=int, default=1000, help="S of the exact VAA along training")
    p.add_argument(
        "--vaa-train-estimates",
        type=int,
        default=1,
        help="estimates averaged per VAA point along training; above 1 each draws its sequences with replacement "
        "(the paper's code: 10)",
    )
    p.add_argument(
        "--partial-freeze",
        action="store_true",
        help="double-warm: keep the second half-cells out of the optimiser (default: they move, as in the paper)",
    )
    p.add_argument("--num-train", type=int, default=4096)
    p.add_argument("--num-val", type=int, default=512)
    p.add_argument("--num-test", type=int, default=512)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--out", required=True, help="directory for report.json, report.md and curves.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_reproduce)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="warmzoo",
        description="Warm up recurrent networks (arXiv 2106.01001), run the zoo server, and use it.",
        epilog="Each verb has its own --help. Settings come from WARMZOO_* variables (docs/usage.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_warmup(sub)
    _add_reproduce(sub)
    _add_server_verbs(sub)
    _add_keys(sub)
    _add_fsck(sub)
    _add_client_verbs(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
