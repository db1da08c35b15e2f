"""Jobs in team mode (issues 13 and 14 together): what a member's job may touch, which models it may name, whose
sweep it joins, who waits for whom, and the last admin under concurrent demotion."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from daam_store.access import Actor, PermissionDeniedError, Role, actor_for, set_role
from daam_store.errors import UserError
from daam_store.jobs import claims
from daam_store.jobs.queue import JobRequest, jobs_progress, submit
from daam_store.jobs.worker import Worker
from daam_store.store import open_store, queries
from daam_store.store.schema import Job, utc_now
from daam_store.url_params import pick_ids

ANN = Actor("ann@example.com", Role.MEMBER)
BOB = Actor("bob@example.com", Role.MEMBER)
ADMIN = Actor("ada@example.com", Role.ADMIN)


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def request(**changes) -> JobRequest:
    return JobRequest(**{"model": "sd1-tiny", "prompt": "a red circle", "seed": 3, "steps": 2, **changes})


def tags_of(store, generation_id: int) -> set[str]:
    with store.session() as session:
        return set(queries.get_generation(session, generation_id).tags)


def test_a_members_job_does_not_tag_someone_elses_generation(store):
    (ann_job,) = submit(store, ANN, [request(tags=("ann-made",))])
    Worker(store, poll_s=0.1).run(until_idle=True)
    (ann_generation,) = jobs_progress(store, [ann_job]).generation_ids
    # Bob asks for the same generation, as a plain batch and in a sweep: both are done at once with Ann's row,
    # and only the sweep's own tag (what Compare selects a sweep by) reaches it, never Bob's free tags.
    bob_jobs = submit(store, BOB, [request(tags=("bob-was-here",))])
    bob_jobs += submit(store, BOB, [request(tags=("bob-again",))], sweep="bobs")
    assert jobs_progress(store, bob_jobs).generation_ids == [ann_generation, ann_generation]
    assert tags_of(store, ann_generation) == {"ann-made", "sweep:bobs"}
    # Her own job (and a shell operator's, who has no identity) still tags it.
    submit(store, ANN, [request(tags=("ann-again",))])
    assert "ann-again" in tags_of(store, ann_generation)


def test_a_member_names_only_built_in_or_registered_models(store, tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(UserError, match="neither a hub id"):  # team mode, no roots set: no folder at all
        submit(store, ANN, [request(model=str(outside))])
    with pytest.raises(PermissionDeniedError, match="unregistered model 'someorg/model'"):
        submit(store, ANN, [request(model="someorg/model")])
    assert submit(store, ADMIN, [request(model="someorg/model")])  # an admin's job registers a new model
    monkeypatch.setenv("DAAM_STORE_MODEL_ROOTS", str(tmp_path / "models"))
    with pytest.raises(UserError, match="DAAM_STORE_MODEL_ROOTS"):  # local use too, once roots are set
        submit(store, Actor(None, Role.ADMIN), [request(model=str(outside))])
    with store.session() as session:
        assert session.query(Job).count() == 1


def test_a_held_model_is_preferred_but_does_not_starve_another_models_jobs(store):
    first = submit(store, ANN, [request(model="sd2-tiny"), request(model="sd1-tiny")])
    held = ["sd1-tiny"]
    assert claims.claim(store, "w1", held=held).id == first[1]  # the fresh sd2 job waits for the detour
    with store.write_session() as session:
        waited = utc_now() - timedelta(seconds=claims.AFFINITY_WAIT_S + 5)
        session.execute(update(Job).where(Job.id == first[0]).values(submitted_at=waited))
    submit(store, ANN, [request(model="sd1-tiny", seed=9)])
    assert claims.claim(store, "w2", held=held).id == first[0]  # waited long enough: oldest first


def test_job_links_take_only_ids_the_store_can_hold():
    huge = "9" * 5000
    assert pick_ids([huge, "99999999999999999999999", "2147483648", "0", "-3", "x", "12", "12", "2147483647"], 5) == [
        12,
        2147483647,
    ]


def test_two_admins_demoting_each_other_at_once_leave_one_admin(store_url, monkeypatch):
    """Both count the admins, then both demote: without the admins' rows locked each sees two and none is left.
    The barrier holds each between its count and its change (a blocked count lets it go after 2 s)."""
    from daam_store import access

    counted = threading.Barrier(2, timeout=2)
    count_admins = access._admin_count

    def count_then_wait(session) -> int:
        admins = count_admins(session)
        try:
            counted.wait()
        except threading.BrokenBarrierError:  # the other one waits on our lock: it counts after we commit
            pass
        return admins

    monkeypatch.setattr(access, "_admin_count", count_then_wait)
    with open_store(store_url) as store:
        set_role(store, "a@example.com", Role.ADMIN)
        set_role(store, "b@example.com", Role.ADMIN)
        outcomes: list[str] = []

        def demote(who: str, by: str) -> None:
            with open_store(store_url) as own:
                try:
                    set_role(own, who, Role.VIEWER, by=actor_for(own, by))
                    outcomes.append("demoted")
                except UserError as error:
                    outcomes.append(str(error))

        threads = [
            threading.Thread(target=demote, args=("a@example.com", "b@example.com")),
            threading.Thread(target=demote, args=("b@example.com", "a@example.com")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        roles = {who: actor_for(store, who).role for who in ("a@example.com", "b@example.com")}
    assert outcomes.count("demoted") == 1 and any("only admin" in outcome for outcome in outcomes), outcomes
    assert list(roles.values()).count(Role.ADMIN) == 1, roles
