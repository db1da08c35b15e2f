"""The Jobs page: everyone's queue as a table, and which jobs the person may cancel or retry."""

from __future__ import annotations

from collections.abc import Sequence

from daam_store.access import Actor, Permission

LIST_LIMIT = 100  # rows on the page (benchmarks/jobs_scale.py times this query); `daam-store jobs` lists more


def job_rows(jobs: Sequence) -> list[dict[str, object]]:
    """JobViews as table rows (plain values: user text stays text in a dataframe)."""
    return [
        {
            "job": job.id,
            "status": job.status,
            "progress": job.fraction,
            "step": f"{job.step} of {job.steps}",
            "model": job.model,
            "prompt": job.prompt,
            "seed": job.seed,
            "sweep": job.sweep or "",
            "who": job.author or "",
            "worker": job.worker or "",
            "generation": job.generation_id,
            "error": job.error or "",
            "submitted": job.submitted_at.strftime("%Y-%m-%d %H:%M:%S") if job.submitted_at else "",
        }
        for job in jobs
    ]


def manageable(jobs: Sequence, actor: Actor) -> list[int]:
    """The ids among `jobs` this person may cancel or retry (theirs, or anyone's for an admin): what the page
    offers. The check that counts is in daam_store.jobs.cancel/retry."""
    if actor.may(Permission.CANCEL_ANY_JOB):
        return [job.id for job in jobs]
    if not actor.may(Permission.CANCEL_OWN_JOBS):
        return []
    return [job.id for job in jobs if actor.owns(job.author)]
