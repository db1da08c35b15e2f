"""The job queue at scale: worker throughput, queue overhead per job, the Jobs page's list query at 10,000 jobs.

    python benchmarks/jobs_scale.py                        # 12-job sweep, 10,000 queued jobs, SQLite
    python benchmarks/jobs_scale.py --db postgresql://...  # the same on PostgreSQL
    python benchmarks/jobs_scale.py --jobs 2 --queued 200 --repeats 5     # a quick look (the smoke test)

What is measured, each on a fresh database:
1. throughput: the same sweep (sd1-tiny, --steps) drained by 1 and then by 2 `daam-store worker` processes
   started after the submission: wall time (model loads included) and the rate between the first job's start and
   the last one's finish (loads excluded), and the ratio 2 workers / 1 worker. The workers share this machine's
   cores (each gets cores / workers torch threads), so the ratio says what a second worker on the same CPU buys;
2. queue overhead per job with one warm, idle worker: submit -> started (the worker's poll), and done (the
   worker's commit) -> visible in the Jobs page's query (list_jobs, polled here in another connection);
3. --queued jobs queued: submit time, then the job-list queries the dashboard runs (everyone's newest 100, the
   queued ones, one author's, counts by status) --repeats times each, fresh session each time: p50 / p95 in ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from daam_store.access import LOCAL_ACTOR  # noqa: E402
from daam_store.jobs.queue import JobRequest, count_jobs, jobs_progress, list_jobs, submit  # noqa: E402
from daam_store.jobs.worker import wait_for  # noqa: E402
from daam_store.store import open_store  # noqa: E402
from daam_store.store.testing import PostgresServer  # noqa: E402

WORKER = "import sys; from daam_store.cli import store_main; sys.exit(store_main(sys.argv[1:]))"


def start_workers(url: str, count: int, until_idle: bool = True) -> list[subprocess.Popen]:
    threads = max(1, (os.cpu_count() or 1) // count)  # the cores shared out: oversubscribed torch threads crawl
    argv = [sys.executable, "-c", WORKER, "worker", "--db", url, "--threads", str(threads)]
    argv += ["--until-idle"] if until_idle else []
    return [subprocess.Popen(argv, stderr=subprocess.DEVNULL) for _ in range(count)]


def sweep(count: int, steps: int, seed_offset: int = 0) -> list[JobRequest]:
    prompts = ["a red dog next to a blue car", "a cat sleeping on a chair"]
    return [JobRequest("sd1-tiny", prompts[n % 2], seed=seed_offset + n, steps=steps) for n in range(count)]


def throughput(new_url, jobs: int, steps: int, workers: int) -> tuple[float, float]:
    """(wall seconds, jobs per second between the first start and the last finish)."""
    url = new_url()
    with open_store(url) as store:
        ids = submit(store, LOCAL_ACTOR, sweep(jobs, steps))
        started = time.perf_counter()
        processes = start_workers(url, workers)
        progress = wait_for(store, ids, poll_s=0.1)
        wall = time.perf_counter() - started
        for process in processes:
            process.wait(60)
    assert all(job.status == "done" for job in progress.jobs), progress.summary()
    first = min(job.started_at for job in progress.jobs)
    last = max(job.finished_at for job in progress.jobs)
    return wall, jobs / max(1e-9, (last - first).total_seconds())


def overhead(new_url, samples: int, steps: int) -> tuple[list[float], list[float]]:
    """submit -> start and done -> visible, in ms, with one warm idle worker."""
    url = new_url()
    to_start, to_visible = [], []
    with open_store(url) as store:
        (warm,) = submit(store, LOCAL_ACTOR, sweep(1, steps, seed_offset=1000))
        (process,) = start_workers(url, 1, until_idle=False)
        try:
            wait_for(store, [warm], poll_s=0.05, timeout_s=300)  # the model is loaded now
            for n in range(samples):
                time.sleep(0.3)  # the worker is idle, polling
                (job_id,) = submit(store, LOCAL_ACTOR, sweep(1, steps, seed_offset=n))
                while True:  # what the Jobs page would show, polled as fast as it can be
                    (view,) = list_jobs(store, limit=1)
                    if view.id == job_id and view.status == "done":
                        seen = time.time()
                        break
                (job,) = jobs_progress(store, [job_id]).jobs
                to_start.append((job.started_at - job.submitted_at).total_seconds() * 1000)
                to_visible.append((seen - job.finished_at.timestamp()) * 1000)
        finally:
            process.terminate()
            process.wait(30)
    return to_start, to_visible


def list_queries(new_url, queued: int, repeats: int) -> None:
    url = new_url()
    with open_store(url) as store:
        requests = [JobRequest("sd1-tiny", f"prompt number {n % 97}", seed=n, steps=20) for n in range(queued)]
        started = time.perf_counter()
        for start in range(0, queued, 1000):  # as a few big sweeps would arrive
            submit(store, LOCAL_ACTOR, requests[start : start + 1000], sweep=f"bench{start}")
        print(f"  submit {queued} jobs: {time.perf_counter() - started:.2f} s")
        queries = {
            "everyone's newest 100": lambda: list_jobs(store, limit=100),
            "queued, newest 100": lambda: list_jobs(store, status="queued", limit=100),
            "one author's 100": lambda: list_jobs(store, author="nobody@example.com", limit=100),
            "one sweep's 100": lambda: list_jobs(store, sweep="bench0", limit=100),
            "counts by status": lambda: count_jobs(store),
        }
        for name, query in queries.items():
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                query()
                times.append((time.perf_counter() - started) * 1000)
            print(f"  {name:<24} p50 {percentile(times, 50):7.2f} ms   p95 {percentile(times, 95):7.2f} ms")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="postgresql://... (a database per measurement is created "
                        "next to it) or 'postgres' for a throwaway server; default: SQLite files")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=12, help="jobs in the throughput sweep")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps per job")
    parser.add_argument("--samples", type=int, default=10, help="jobs timed for the queue overhead")
    parser.add_argument("--queued", type=int, default=10_000, help="jobs queued for the list query")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--workers", default="1,2", help="worker counts compared for throughput (default 1,2)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    server = PostgresServer.start() if args.db == "postgres" else None
    counter = iter(range(1_000_000))

    def new_url() -> str:
        n = next(counter)
        if server is not None:
            return server.create_database(f"jobs_bench_{n}")
        if args.db:
            base = args.db.rsplit("/", 1)[0]
            return _create_postgres_database(args.db, base, f"jobs_bench_{os.getpid()}_{n}")
        return f"sqlite:///{folder / f'bench-{n}.db'}"

    print(f"jobs_scale: {'PostgreSQL' if args.db else 'SQLite'}, {os.cpu_count()} CPU cores, sd1-tiny, "
          f"{args.steps} steps")  # fmt: skip
    try:
        print(f"1. throughput, the same {args.jobs}-job sweep:")
        runs: dict[int, list[tuple[float, float]]] = {}
        for workers in [int(n) for n in args.workers.split(",")]:  # e.g. 1,2,1,2: alternated, so drift hits both
            wall, rate = throughput(new_url, args.jobs, args.steps, workers)
            runs.setdefault(workers, []).append((wall, rate))
            print(f"  {workers} worker{'s' if workers > 1 else ' '}: {wall:6.1f} s wall (loads included), "
                  f"{rate:5.2f} jobs/s between first start and last finish")  # fmt: skip
        rates = {n: (statistics.median(w for w, _ in r), statistics.median(q for _, q in r)) for n, r in runs.items()}
        if 1 in rates and 2 in rates:
            print(f"  ratio 2/1 workers (medians): {rates[1][0] / rates[2][0]:.2f}x by wall time, "
                  f"{rates[2][1] / rates[1][1]:.2f}x by rate")  # fmt: skip
        to_start, to_visible = overhead(new_url, args.samples, args.steps)
        print(f"2. queue overhead per job ({args.samples} jobs, one warm idle worker):")
        print(f"  submit -> started      p50 {statistics.median(to_start):7.1f} ms   max {max(to_start):7.1f} ms")
        print(f"  done -> visible        p50 {statistics.median(to_visible):7.1f} ms   max {max(to_visible):7.1f} ms")
        print(f"3. the job list with {args.queued} queued jobs ({args.repeats} runs each):")
        list_queries(new_url, args.queued, args.repeats)
    finally:
        if server is not None:
            server.stop()


def _create_postgres_database(url: str, base: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    from daam_store.store.session import parse_database_url

    admin = create_engine(parse_database_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{base}/{name}"


if __name__ == "__main__":
    main()
