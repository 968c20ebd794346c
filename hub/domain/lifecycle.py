"""The life cycle of a bulletin (bản tin), as one table: which action moves it from which state
to which, and who may take it.

    (new) ──create──► draft ──submit──► submitted ──approve──► published ──cancel──► cancelled
                        │  ▲              │   ▲                   ▲
                        │  └─ edit ─┐  return│submit               │
                        │        returned ◄─┘   │                   │
                        └───────────────── publish (its own unit) ──┘
    draft, returned ──delete──► deleted (never published: gone from lists, history kept)

A contributor (an agency, the newspaper) drafts and submits; a reviewer edits, returns with a
comment, or approves; admins, reviewers and a commune's operator may also publish their own
unit's draft directly (another unit's draft must be submitted, then approved, so it passes the
submit checks). An edit keeps the state. Which roles may take an action at all (write, review,
publish) is the route's permission (hub/auth.py); the table adds what depends on the bulletin:
its state and whose unit it is.

Pure: plain values in, the next state or a `Refusal` out. The API turns refusals into its
answers (409 illegal_transition, not_submitted, expired; 403 out_of_scope).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class BulletinState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    PUBLISHED = "published"
    CANCELLED = "cancelled"
    #: A draft (or a returned one) thrown away before it was ever published: gone from every
    #: list, its history kept (published bulletins are cancelled, never deleted).
    DELETED = "deleted"


class Action(StrEnum):
    CREATE = "create"
    EDIT = "edit"
    SUBMIT = "submit"
    RETURN = "return"
    APPROVE = "approve"
    PUBLISH = "publish"
    CANCEL = "cancel"
    DELETE = "delete"


@dataclass(frozen=True)
class Actor:
    """Who acts, as far as the life cycle cares."""

    unit: str
    #: A province account (admin, reviewer, a province technician or viewer).
    province_wide: bool
    #: May review (thẩm định): edit what is under review, return, approve.
    reviewer: bool


class Refusal(Exception):
    """The action is not allowed now; the message says why, for the person who tried."""


class IllegalTransition(Refusal):
    """Not from this state (or not by this actor in this state)."""


class OutOfScope(Refusal):
    """The bulletin belongs to another unit."""


class NotSubmitted(Refusal):
    """Another unit's draft, published directly: it must be submitted, then approved."""


class Expired(Refusal):
    """Its valid_until has passed: it can no longer be published."""


class Guard(StrEnum):
    """A condition on the actor and the bulletin's unit (its owner)."""

    ANYONE = "anyone"
    #: The bulletin's own unit.
    OWNER = "owner"
    #: The bulletin's own unit, or any province-wide account.
    OWNER_OR_PROVINCE = "owner_or_province"
    #: The bulletin's own unit, or a reviewer.
    OWNER_OR_REVIEWER = "owner_or_reviewer"
    #: A reviewer (what is under review is the reviewers' to change).
    REVIEWER = "reviewer"


#: What an OutOfScope refusal says ({owner}: the bulletin's unit).
NOT_YOURS = "this bulletin belongs to unit {owner!r}"


@dataclass(frozen=True)
class Move:
    to: BulletinState
    #: Who may make this move, once the action itself is allowed (see `Rule.who`).
    who: Guard = Guard.ANYONE
    #: The refusal when `who` fails, and its sentence ({owner}: the bulletin's unit).
    refusal: type[Refusal] = OutOfScope
    says: str = NOT_YOURS


@dataclass(frozen=True)
class Rule:
    #: Checked first, whatever the state: who may take the action on this bulletin at all.
    who: Guard
    #: From which state (None: a bulletin not made yet) to which; in the order the refusal
    #: names them.
    moves: dict[BulletinState | None, Move]
    #: The refusal's sentence when the state is wrong ({state}: the bulletin's state); None:
    #: "cannot <action> a <state> bulletin; only a <the states above> one".
    wrong_state: str | None = None
    #: Said after `wrong_state` for one state: where to go instead.
    hints: dict[BulletinState, str] = field(default_factory=dict)


S = BulletinState
#: The life cycle: every legal move; anything else is refused.
LIFE_CYCLE: dict[Action, Rule] = {
    Action.CREATE: Rule(Guard.ANYONE, {None: Move(S.DRAFT)}),
    Action.EDIT: Rule(
        Guard.ANYONE,
        {
            S.DRAFT: Move(S.DRAFT, Guard.OWNER_OR_REVIEWER),
            S.RETURNED: Move(S.RETURNED, Guard.OWNER_OR_REVIEWER),
            S.SUBMITTED: Move(
                S.SUBMITTED,
                Guard.REVIEWER,
                IllegalTransition,
                "a submitted bulletin is under review",
            ),
        },
    ),
    Action.SUBMIT: Rule(Guard.OWNER, {S.DRAFT: Move(S.SUBMITTED), S.RETURNED: Move(S.SUBMITTED)}),
    Action.RETURN: Rule(Guard.ANYONE, {S.SUBMITTED: Move(S.RETURNED)}),
    Action.APPROVE: Rule(Guard.ANYONE, {S.SUBMITTED: Move(S.PUBLISHED)}),
    Action.PUBLISH: Rule(
        Guard.OWNER_OR_PROVINCE,
        # A province account reaches other units' drafts, but publishes only its own: another
        # unit's draft skipped the submit checks and its unit's say that it is ready.
        {
            S.DRAFT: Move(
                S.PUBLISHED,
                Guard.OWNER,
                NotSubmitted,
                "this draft belongs to unit {owner!r} and was never submitted; it is published"
                " by approving it after its unit submits it",
            )
        },
        wrong_state="only a draft can be published directly; this bulletin is {state}",
        hints={S.SUBMITTED: " (use approve)"},
    ),
    Action.CANCEL: Rule(
        Guard.OWNER_OR_PROVINCE,
        {S.PUBLISHED: Move(S.CANCELLED)},
        wrong_state="only a published bulletin can be cancelled; this one is {state}",
    ),
    Action.DELETE: Rule(
        Guard.OWNER_OR_PROVINCE,
        {S.DRAFT: Move(S.DELETED), S.RETURNED: Move(S.DELETED)},
        wrong_state="only a bulletin never published (a draft or a returned one) can be"
        " deleted; this one is {state}",
        hints={
            S.PUBLISHED: " (cancel it instead: its history is kept)",
            S.SUBMITTED: " (it is under review: ask the reviewer to return it)",
        },
    ),
}


def _passes(guard: Guard, actor: Actor, owner: str) -> bool:
    own = actor.unit == owner
    if guard is Guard.OWNER:
        return own
    if guard is Guard.OWNER_OR_PROVINCE:
        return own or actor.province_wide
    if guard is Guard.OWNER_OR_REVIEWER:
        return own or actor.reviewer
    if guard is Guard.REVIEWER:
        return actor.reviewer
    return True


def check_actor(action: Action, actor: Actor, owner: str) -> None:
    """Raise OutOfScope unless `actor` may take `action` on a bulletin of unit `owner` at all
    (before its state is looked at)."""
    if not _passes(LIFE_CYCLE[action].who, actor, owner):
        raise OutOfScope(NOT_YOURS.format(owner=owner))


def _allowed_states(rule: Rule) -> str:
    names = [s.value if s is not None else "new" for s in rule.moves]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _wrong_state(action: Action, state: BulletinState | None) -> IllegalTransition:
    rule = LIFE_CYCLE[action]
    name = state.value if state is not None else "new"
    if rule.wrong_state is None:
        return IllegalTransition(
            f"cannot {action.value} a {name} bulletin; only a {_allowed_states(rule)} one"
        )
    hint = rule.hints.get(state, "") if state is not None else ""
    return IllegalTransition(rule.wrong_state.format(state=name) + hint)


def next_state(
    state: BulletinState | None, action: Action, actor: Actor, owner: str
) -> BulletinState:
    """The state `action` by `actor` moves a bulletin of unit `owner` to, from `state` (None:
    not made yet); a Refusal when it may not. The actor is checked first (OutOfScope), then
    the state (IllegalTransition), then who may make this move."""
    check_actor(action, actor, owner)
    move = LIFE_CYCLE[action].moves.get(state)
    if move is None:
        raise _wrong_state(action, state)
    if not _passes(move.who, actor, owner):
        raise move.refusal(move.says.format(owner=owner))
    return move.to


def allows(state: BulletinState | None, action: Action, actor: Actor, owner: str) -> bool:
    """Whether `next_state` would allow it (the console shows only the actions it allows)."""
    try:
        next_state(state, action, actor, owner)
    except Refusal:
        return False
    return True


def check_in_force(valid_until: datetime, now: datetime) -> None:
    """A bulletin is published (approved, published, or sent as an emergency) only while it is
    valid: Expired once its valid_until has passed."""
    if valid_until <= now:
        raise Expired("the bulletin's valid_until has passed; edit or recreate it")
