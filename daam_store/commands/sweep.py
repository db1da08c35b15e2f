"""`daam-store sweep`: run a prompt x seed x model grid into the store, skipping what is stored."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daam_store.commands.common import add_db_option, finite_float, open_store, plural
from daam_store.errors import UserError
from daam_store.tags import check_author


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="generate and store a prompt x seed x model grid (skips what is stored, resumes after a crash)",
        description="Generate, trace and store every (model, prompt, seed) of a grid. Generations already "
        "stored with the same settings are skipped, so running the same command again after a crash "
        "resumes it. Every row of the grid is tagged sweep:<name> for the dashboard's Compare page.",
    )
    parser.add_argument("--prompts", required=True, help="text file with one prompt per line ('#' starts a comment)")
    parser.add_argument("--seeds", required=True, help="seeds as numbers and ranges, e.g. 0-31 or 0,5,10-12")
    parser.add_argument("--models", default="sd1-tiny", help="comma-separated built-in names, folders or hub ids")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: as `daam`)")
    parser.add_argument("--guidance", type=finite_float, default=None, help="guidance scale (default: as `daam`)")
    parser.add_argument("--negative-prompt", default=None, help="negative prompt for every generation")
    parser.add_argument("--save-steps", action="store_true", help="also store per-step maps (for per-step curves)")
    parser.add_argument("--name", default=None, help="the sweep's name, tagged on its rows (default: the file's name)")
    parser.add_argument("--author", default=None, help="author recorded with every generation")
    parser.add_argument("--mid-block", action="store_true", help="average the UNet's mid block into the maps too")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS", help="submit the grid as jobs for Ray workers "
                        "(local | auto | ray://host:port) and wait for them, instead of running it here")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="with --ray: Ray actors to start for this sweep "
                        "(default 1 with --ray local, else 0: the cluster's `daam-store worker`s run it)")  # fmt: skip
    add_db_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from daam_store.sweep import (
        SweepSettings,
        check_sweep_name,
        parse_models,
        parse_seed_spec,
        read_prompts,
        run_sweep,
    )

    prompts = read_prompts(args.prompts)
    seeds = parse_seed_spec(args.seeds)
    models = parse_models(args.models)
    try:
        name = check_sweep_name(args.name or Path(args.prompts).stem)
    except UserError as error:
        if args.name is not None:
            raise
        raise UserError(f"{error} (it comes from the prompts file's name: give one with --name)") from None
    defaults = SweepSettings()
    settings = SweepSettings(
        steps=defaults.steps if args.steps is None else args.steps,
        guidance_scale=defaults.guidance_scale if args.guidance is None else args.guidance,
        negative_prompt=args.negative_prompt,
        save_steps=args.save_steps,
        author=check_author(args.author),
        mid_block=args.mid_block,
    )
    if args.ray:
        return _run_on_ray(args, prompts, seeds, models, settings, name)
    store = open_store(args.db, write=True)
    total = len(prompts) * len(seeds) * len(models)
    grid = " x ".join(
        plural(n, noun) for n, noun in ((len(prompts), "prompt"), (len(seeds), "seed"), (len(models), "model"))
    )
    print(f"sweep {name}: {grid} = {plural(total, 'generation')}")
    with tqdm(total=total, unit="gen", file=sys.stderr, dynamic_ncols=True) as bar:

        def on_progress(progress) -> None:
            bar.n = progress.done
            if progress.job is not None:  # None: the jobs found stored at submission
                bar.set_postfix_str(f"{progress.job.model} seed {progress.job.seed}", refresh=False)
            bar.refresh()

        try:
            report = run_sweep(store, prompts, seeds, models, settings, name=name, on_progress=on_progress,
                               device=args.device)  # fmt: skip
        finally:
            store.close()
    print(
        f"sweep {name}: {report.generated} generated, {report.skipped} already stored; "
        f"tagged sweep:{name} on {plural(len(report.generation_ids), 'generation')}"
    )
    return 0


def _run_on_ray(args, prompts, seeds, models, settings, name: str) -> int:
    """Submit the grid as jobs, start this sweep's Ray actors (if any), and follow the jobs in the store."""
    from tqdm import tqdm

    from daam_store.access import LOCAL_ACTOR
    from daam_store.commands.jobs import store_url
    from daam_store.jobs.claims import connected_workers
    from daam_store.jobs.grid import submit_grid
    from daam_store.jobs.worker import wait_for

    workers = args.workers if args.workers is not None else (1 if args.ray == "local" else 0)
    url = store_url(args.db)
    with open_store(url, write=True) as store:
        ids = submit_grid(store, LOCAL_ACTOR, prompts, seeds, models, settings, sweep=name)
        print(f"sweep {name}: {plural(len(ids), 'job')} submitted", file=sys.stderr)
        executor = None
        if workers:
            from daam_store.jobs.ray_executor import RayExecutor

            executor = RayExecutor(url, args.ray, workers=workers)
        elif not connected_workers(store):
            print("note: no worker is connected; start `daam-store worker --ray ADDRESS` on the cluster",
                  file=sys.stderr)  # fmt: skip
        try:
            with tqdm(total=len(ids), unit="job", file=sys.stderr, dynamic_ncols=True) as bar:

                def on_progress(progress) -> None:
                    bar.n = progress.finished
                    bar.set_postfix_str(progress.summary(), refresh=False)
                    bar.refresh()

                progress = wait_for(store, ids, on_progress=on_progress)
        finally:
            if executor is not None:
                executor.stop()
    failed = [job for job in progress.jobs if job.status != "done"]
    if failed:
        raise UserError(
            f"sweep {name}: {len(failed)} of {len(ids)} jobs did not finish ({failed[0].status}: "
            f"{failed[0].error or 'no message'}); submit the same sweep again to retry them"
        )
    print(f"sweep {name}: {plural(len(ids), 'generation')} done; tagged sweep:{name}")
    return 0
