"""`daam-store worker` runs workers; `daam-store jobs` lists the queue, `jobs cancel` and `jobs retry` act on it.

The shell's user acts as the local user (LOCAL_ACTOR): whoever can open the database owns it.
"""

from __future__ import annotations

import argparse
import json
import sys

from daam_store.commands.common import URL_HELP, add_db_option, check_limit, open_store, plural, stored_integer
from daam_store.errors import UserError

STATUSES = ("queued", "running", "done", "failed", "cancelled")  # schema.JOB_STATUSES, without importing it


def register(subparsers) -> None:
    _register_worker(subparsers)
    _register_jobs(subparsers)


def _register_worker(subparsers) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run generation jobs from the store's queue until interrupted",
        description="Run the queued generation jobs (submitted by the dashboard or `daam-store sweep --ray`). "
        "Without --ray one worker runs in this process; with --ray ADDRESS (local, auto or ray://...; default "
        "$DAAM_STORE_RAY_ADDRESS) the workers are Ray actors, one GPU each where the cluster has GPUs.",
    )
    parser.add_argument("--ray", default=None, metavar="ADDRESS", help="local | auto | ray://host:port")
    parser.add_argument("--models", default=None, help="comma-separated: run only these models' jobs")
    parser.add_argument("--workers", type=int, default=1, help="Ray actors to start (default 1)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when there is one, else cpu)")
    parser.add_argument("--lease", type=float, default=None, help="seconds without a heartbeat before a running "
                        "job's worker counts as lost and the job is queued again (default 60)")  # fmt: skip
    parser.add_argument("--until-idle", action="store_true", help="stop when the queue is empty (no --ray)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (no --ray; default: torch's "
                        "own, all cores): give each of several CPU workers on one machine its share")  # fmt: skip
    add_db_option(parser)
    parser.set_defaults(func=run_worker)


def _register_jobs(subparsers) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="list the generation jobs; `jobs cancel ID...`, `jobs retry ID...`",
        description="The job queue, newest first: who asked, what, status, progress, worker, error.",
    )
    parser.add_argument("--status", choices=STATUSES, default=None, help="only jobs with this status")
    parser.add_argument("--author", default=None, help="only this author's jobs")
    parser.add_argument("--sweep", default=None, help="only this sweep's jobs")
    parser.add_argument("--limit", type=stored_integer, default=50, help="at most this many (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_db_option(parser)
    parser.set_defaults(func=run_list)
    actions = parser.add_subparsers(dest="action")
    for name, func, verb in (("cancel", run_cancel, "cancel (a running job stops at its next step)"),
                             ("retry", run_retry, "queue failed or cancelled jobs again")):  # fmt: skip
        action = actions.add_parser(name, help=f"{verb}", description=f"{verb[0].upper()}{verb[1:]}.")
        action.add_argument("ids", nargs="+", type=stored_integer, metavar="ID")
        # SUPPRESS: `jobs --db URL cancel 3` keeps the URL given before the action
        action.add_argument("--db", "--url", default=argparse.SUPPRESS, metavar="URL", help=URL_HELP)
        action.set_defaults(func=func)


def store_url(db: str | None) -> str:
    """The URL workers elsewhere (Ray actors) can open: a SQLite path made absolute."""
    from daam_store.store.session import portable_database_url

    return portable_database_url(db)


def run_worker(args: argparse.Namespace) -> int:
    from daam_store.jobs.claims import DEFAULT_LEASE_S
    from daam_store.jobs.ray_executor import ray_address
    from daam_store.sweep import parse_models

    models = parse_models(args.models) if args.models else None
    lease_s = args.lease if args.lease is not None else DEFAULT_LEASE_S
    if lease_s <= 0 or args.workers < 1:
        raise UserError("--lease and --workers must be positive")
    address = args.ray or ray_address()
    url = store_url(args.db)
    open_store(url, write=True).close()  # an unusable or outdated database fails here, in one line
    if address is None:
        if args.workers != 1:
            raise UserError("--workers needs --ray; without it, start one `daam-store worker` per worker")
        from daam_store.jobs.worker import Worker

        if args.threads is not None:
            import torch

            torch.set_num_threads(max(1, args.threads))  # workers sharing the cores must not oversubscribe them
        worker = Worker(url, models=models, device=args.device, lease_s=lease_s)
        print(f"worker {worker.id} running jobs from {worker.store.url} (Ctrl-C stops it)", file=sys.stderr)
        report = worker.run(until_idle=args.until_idle)
        print(f"worker {worker.id}: {_outcomes(report.outcomes)}", file=sys.stderr)
        return 0
    from daam_store.jobs.ray_executor import RayExecutor

    executor = RayExecutor(url, address, workers=args.workers, models=models, lease_s=lease_s)
    print(f"{plural(args.workers, 'Ray worker')} on {address} running jobs (Ctrl-C stops them)", file=sys.stderr)
    try:
        executor.wait()
    finally:
        executor.stop()
    return 0


def _outcomes(outcomes) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "no jobs"


def run_list(args: argparse.Namespace) -> int:
    from daam_store.jobs.queue import list_jobs

    check_limit(args.limit)
    with open_store(args.db) as store:
        jobs = list_jobs(store, status=args.status, author=args.author, sweep=args.sweep, limit=args.limit)
    if args.json:
        for job in jobs:
            print(json.dumps(job.as_dict()))
        return 0
    if not jobs:
        print("no jobs")
        return 0
    print(f"{'id':>6}  {'status':<9} {'progress':>8}  {'model':<12} {'seed':>6}  {'author':<14} prompt / error")
    for job in jobs:
        progress = f"{job.step}/{job.steps}"
        line = f"{job.id:>6}  {job.status:<9} {progress:>8}  {job.model[-12:]:<12} {job.seed:>6}  "
        line += f"{(job.author or '-')[:14]:<14} {job.prompt[:40]!r}"
        if job.error:
            line += f"  ({job.error[:80]})"
        print(line)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    return _act(args, "cancel", "cancelled", "already finished")


def run_retry(args: argparse.Namespace) -> int:
    return _act(args, "retry", "queued again", "neither failed nor cancelled")


def _act(args: argparse.Namespace, action: str, done: str, why_not: str) -> int:
    from daam_store.access import LOCAL_ACTOR
    from daam_store.jobs import queue

    with open_store(args.db, write=True) as store:
        changed = getattr(queue, action)(store, LOCAL_ACTOR, args.ids)
    left = sorted(set(args.ids) - set(changed))
    print(f"{plural(len(changed), 'job')} {done}" + (f"; unchanged ({why_not}): {left}" if left else ""))
    return 0
