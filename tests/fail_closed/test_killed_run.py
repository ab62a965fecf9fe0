"""Did not hold: a ``kill -9`` of ``python main.py run`` orphaned the Java emulator (2 processes left) and
lost everything since the last export; the rerun placed the same 3 orders again.

Now the run is killed with SIGKILL (fault action ``kill``) after its first order, or after all its orders
just before the audit. The embedded emulator dies with it (0 processes left), the state saved at each
commit point holds the crashed run's orders, and the rerun repeats none of them.
"""

from __future__ import annotations

import json
import signal

import pytest

from bus.emulator import FirestoreEmulator
from bus.orders import OrderLifecycle
from bus.store import FirestoreStore
from tests.support.processes import cli, emulators_using, none_left, using_emulator

PROJECT = "intent-bus-local"
EMBEDDED = {"GOOGLE_CLOUD_PROJECT": PROJECT}
NO_SHARED_EMULATOR = ("FIRESTORE_EMULATOR_HOST",)  # the run starts its own, as a person's run does


@pytest.mark.parametrize("point", ["commander.after_order#1", "commander.before_audit"])
def test_a_run_killed_after_its_orders_leaves_no_emulator_and_its_rerun_repeats_no_order(tmp_path, point):
    args = ["run", "--json", "--as-of", "2020-03-16", "--state-dir", str(tmp_path)]
    crashed = cli(args, {**EMBEDDED, "INTENT_BUS_FAULTS": f"{point}=kill"}, drop=NO_SHARED_EMULATOR)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert none_left(tmp_path) == []  # the emulator died with its parent
    again = cli(args, EMBEDDED, drop=NO_SHARED_EMULATOR)
    assert again.returncode == 0, again.stderr
    assert emulators_using(tmp_path) == []
    rerun = json.loads(again.stdout)
    with FirestoreEmulator(PROJECT, state_dir=tmp_path) as emu, using_emulator(emu.host):
        st = FirestoreStore(PROJECT)
        records = [OrderLifecycle.model_validate(d) for _, d in st.list_docs("orders")]
        venue = [d for _, d in st.list_docs("sim_accounts/sim-paper/orders")]
    sent = [r for r in records if r.status != "cancelled"]
    assert sent and len({r.symbol for r in sent}) == len(sent)  # one order per symbol: none repeated
    by_crashed = {r.symbol for r in sent if r.execution_id != rerun["execution_id"]}
    assert by_crashed  # the crashed run's orders are on record (saved at each commit point)
    assert not by_crashed & {o["symbol"] for o in rerun["orders"]}  # and the rerun sent none of them again
    assert sorted(d["client_order_id"] for d in venue) == sorted(r.client_order_id for r in sent)  # 1 each
    assert all(r.booked_quantity == r.filled_quantity for r in records)  # what filled is booked
    print(f"killed run ({point}): {len(by_crashed)} orders of the crashed run on record, rerun placed "
          f"{len(rerun['orders'])}, emulators left 0")
