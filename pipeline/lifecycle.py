"""A strategy's lifecycle state, changed by a person and recorded: who, when, why, before and after.

States (``strategies/{id}.state``; the Commander honours them, see :mod:`commander.lifecycle`):

* ``active``: its intent is used (the default);
* ``paused``: its book is held as it is, no intent is used;
* ``isolated``: reduce only: its targets may shrink its positions, never grow or flip them;
* ``retired``: flattened, then disabled (``enabled: false``) once its book is flat.

Every change writes, in one batch with the strategy document, an audit record
``strategies/{id}/state_changes/{change_id}`` (:class:`bus.models.StateChange`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Literal

from bus import paths
from bus.models import LifecycleState, StateChange
from bus.store import Store

Action = Literal["pause", "resume", "isolate", "retire"]
#: The state each action leads to.
TARGET_STATE: dict[str, LifecycleState] = {"pause": "paused", "resume": "active", "isolate": "isolated",
                                           "retire": "retired"}


class LifecycleError(ValueError):
    """A state change that cannot be made (unknown strategy, or already in that state)."""


def change_state(store: Store, strategy_id: str, action: Action, by: str, reason: str,
                 now: datetime | None = None) -> StateChange:
    """Apply ``action`` to ``strategies/{strategy_id}`` and record it; returns the audit record.

    ``resume`` also re-enables a strategy (``enabled: true``) that a retirement disabled.

    Raises:
        LifecycleError: the strategy does not exist, the action is unknown, or it is already in that state.
        bus.store.StoreError: the store failed (nothing is written).
    """
    if action not in TARGET_STATE:
        raise LifecycleError(f"unknown action {action!r}: use one of {', '.join(TARGET_STATE)}")
    if not reason.strip():
        raise LifecycleError("a reason is required")
    doc = store.get(paths.strategy(strategy_id))
    if doc is None:
        raise LifecycleError(f"no strategy {strategy_id!r} in the store (apply the configuration first)")
    before: LifecycleState = doc.get("state") or "active"
    after = TARGET_STATE[action]
    if before == after and (action != "resume" or doc.get("enabled", True)):
        raise LifecycleError(f"{strategy_id} is already {after}")
    now = now or datetime.now(timezone.utc)
    change = StateChange(change_id=f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}",
                         strategy_id=strategy_id, at=now, by=by, reason=reason.strip(), action=action,
                         before=before, after=after, enabled_before=bool(doc.get("enabled", True)))
    new = {**doc, "state": after, "state_reason": change.reason, "state_changed_at": now, "state_changed_by": by}
    if action == "resume":
        new["enabled"] = True
        new["disabled_reason"] = None
    store.write_batch([(paths.strategy(strategy_id), new),
                       (paths.state_change(strategy_id, change.change_id), change.to_store())])
    return change


def state_changes(store: Store, strategy_id: str) -> list[StateChange]:
    """The strategy's recorded state changes, oldest first."""
    return [StateChange.model_validate(d) for _, d in store.list_docs(paths.state_changes(strategy_id))]
