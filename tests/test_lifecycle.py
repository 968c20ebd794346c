"""The bulletin life cycle's table (hub/domain/lifecycle.py), every state by every action by
every kind of actor, against the rules the handlers applied one by one before the table."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from hub.bulletins import State
from hub.domain.lifecycle import (
    LIFE_CYCLE,
    Action,
    Actor,
    BulletinState,
    Expired,
    IllegalTransition,
    NotSubmitted,
    OutOfScope,
    Refusal,
    allows,
    check_actor,
    check_in_force,
    next_state,
)

S = BulletinState
A = Action
STATES: list[BulletinState | None] = [None, *BulletinState]
UNITS = ("so-yte", "province", "00001")
ACTORS = [
    Actor(unit=unit, province_wide=wide, reviewer=reviewer)
    for unit, wide, reviewer in itertools.product(UNITS, (False, True), (False, True))
]

#: Every legal move, written out: (state, action) -> next state.
LEGAL = {
    (None, A.CREATE): S.DRAFT,
    (S.DRAFT, A.EDIT): S.DRAFT,
    (S.RETURNED, A.EDIT): S.RETURNED,
    (S.SUBMITTED, A.EDIT): S.SUBMITTED,
    (S.DRAFT, A.SUBMIT): S.SUBMITTED,
    (S.RETURNED, A.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, A.RETURN): S.RETURNED,
    (S.SUBMITTED, A.APPROVE): S.PUBLISHED,
    (S.DRAFT, A.PUBLISH): S.PUBLISHED,
    (S.PUBLISHED, A.CANCEL): S.CANCELLED,
    (S.DRAFT, A.DELETE): S.DELETED,
    (S.RETURNED, A.DELETE): S.DELETED,
}
#: An actor who passes every who-rule: a reviewer of the bulletin's own unit.
EVERYONE = Actor(unit="province", province_wide=True, reviewer=True)


def wrong_state(action: Action, state: BulletinState | None) -> str:
    name = state.value if state is not None else "new"
    return {
        A.CREATE: f"cannot create a {name} bulletin; only a new one",
        A.EDIT: f"cannot edit a {name} bulletin; only a draft, returned or submitted one",
        A.SUBMIT: f"cannot submit a {name} bulletin; only a draft or returned one",
        A.RETURN: f"cannot return a {name} bulletin; only a submitted one",
        A.APPROVE: f"cannot approve a {name} bulletin; only a submitted one",
        A.PUBLISH: f"only a draft can be published directly; this bulletin is {name}"
        + (" (use approve)" if state is S.SUBMITTED else ""),
        A.CANCEL: f"only a published bulletin can be cancelled; this one is {name}",
        A.DELETE: "only a bulletin never published (a draft or a returned one) can be deleted;"
        f" this one is {name}"
        + (" (cancel it instead: its history is kept)" if state is S.PUBLISHED else "")
        + (" (it is under review: ask the reviewer to return it)" if state is S.SUBMITTED else ""),
    }[action]


@pytest.mark.parametrize(("state", "action"), list(itertools.product(STATES, Action)))
def test_every_state_and_action(state: BulletinState | None, action: Action) -> None:
    expected = LEGAL.get((state, action))
    if expected is not None:
        assert next_state(state, action, EVERYONE, "province") is expected
        assert allows(state, action, EVERYONE, "province")
        return
    with pytest.raises(IllegalTransition) as refused:
        next_state(state, action, EVERYONE, "province")
    assert str(refused.value) == wrong_state(action, state)
    assert not allows(state, action, EVERYONE, "province")


def test_the_table_holds_exactly_the_legal_moves() -> None:
    table = {
        (state, action): move.to
        for action, rule in LIFE_CYCLE.items()
        for state, move in rule.moves.items()
    }
    assert table == LEGAL


def handlers_before_the_table(
    state: BulletinState, action: Action, actor: Actor, owner: str
) -> BulletinState:
    """The rules as hub/bulletins.py checked them, handler by handler, before the table."""
    own = actor.unit == owner
    not_yours = OutOfScope(f"this bulletin belongs to unit {owner!r}")
    if action is A.CREATE:
        raise IllegalTransition(wrong_state(action, state))
    if action is A.EDIT:
        if state in (S.DRAFT, S.RETURNED):
            if not own and not actor.reviewer:
                raise not_yours
            return state
        if state is S.SUBMITTED:
            if not actor.reviewer:
                raise IllegalTransition("a submitted bulletin is under review")
            return state
        raise IllegalTransition(wrong_state(action, state))
    if action is A.SUBMIT:
        if not own:
            raise not_yours
        if state not in (S.DRAFT, S.RETURNED):
            raise IllegalTransition(wrong_state(action, state))
        return S.SUBMITTED
    if action in (A.RETURN, A.APPROVE):
        if state is not S.SUBMITTED:
            raise IllegalTransition(wrong_state(action, state))
        return S.RETURNED if action is A.RETURN else S.PUBLISHED
    if action is A.PUBLISH:
        if not actor.province_wide and not own:
            raise not_yours
        if state is not S.DRAFT:
            raise IllegalTransition(wrong_state(action, state))
        if not own:
            raise NotSubmitted(
                f"this draft belongs to unit {owner!r} and was never submitted; it is"
                " published by approving it after its unit submits it"
            )
        return S.PUBLISHED
    if action is A.DELETE:
        if not actor.province_wide and not own:
            raise not_yours
        if state not in (S.DRAFT, S.RETURNED):
            raise IllegalTransition(wrong_state(action, state))
        return S.DELETED
    assert action is A.CANCEL
    if not actor.province_wide and not own:
        raise not_yours
    if state is not S.PUBLISHED:
        raise IllegalTransition(wrong_state(action, state))
    return S.CANCELLED


def outcome(fn: Callable[..., BulletinState], *args: object) -> tuple[str, str]:
    try:
        return "ok", str(fn(*args))
    except Refusal as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("actor", ACTORS, ids=repr)
@pytest.mark.parametrize("owner", UNITS)
def test_who_may_do_what_is_what_the_handlers_allowed(actor: Actor, owner: str) -> None:
    for state, action in itertools.product(BulletinState, Action):
        got = outcome(next_state, state, action, actor, owner)
        assert got == outcome(handlers_before_the_table, state, action, actor, owner), (
            state,
            action,
        )
        assert allows(state, action, actor, owner) == (got[0] == "ok")


def test_who_refusals_name_the_unit() -> None:
    agency = Actor(unit="so-yte", province_wide=False, reviewer=False)
    commune = Actor(unit="00001", province_wide=False, reviewer=False)
    reviewer = Actor(unit="province", province_wide=True, reviewer=True)
    with pytest.raises(OutOfScope, match="belongs to unit 'so-yte'"):
        next_state(S.DRAFT, A.EDIT, commune, "so-yte")
    with pytest.raises(OutOfScope):
        next_state(S.DRAFT, A.SUBMIT, reviewer, "so-yte")  # a reviewer submits nobody's draft
    with pytest.raises(NotSubmitted):
        next_state(S.DRAFT, A.PUBLISH, reviewer, "so-yte")
    assert next_state(S.DRAFT, A.PUBLISH, commune, "00001") is S.PUBLISHED
    assert next_state(S.PUBLISHED, A.CANCEL, reviewer, "00001") is S.CANCELLED
    with pytest.raises(OutOfScope):
        check_actor(A.CANCEL, agency, "province")
    check_actor(A.CANCEL, reviewer, "so-yte")


def test_the_api_spells_out_the_states_of_the_table() -> None:
    assert get_args(State) == tuple(s.value for s in BulletinState)


def test_a_bulletin_is_published_only_while_valid() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    check_in_force(now + timedelta(microseconds=1), now)
    for until in (now, now - timedelta(days=1)):
        with pytest.raises(Expired, match="valid_until has passed"):
            check_in_force(until, now)
