"""The simulator changes existing tasks as the backend does (a call ends, post-call data
lands): ``update`` re-renders only those tasks, ``settle`` ages a space."""

from __future__ import annotations

from collections import Counter

import msgspec

from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, make_client


def _docs(sim: Simulator) -> list[dict[str, object]]:
    return [msgspec.json.decode(raw) for raw in sim.tasks_json()]


def test_update_sets_fields_and_bumps_modified() -> None:
    sim = Simulator(50)
    before = _docs(sim)
    target = sim.task_ids()[7]
    found = sim.update(
        target,
        "no-such-task",
        status="completed",
        **{"output.post_call_data.summary.status": "Interested"},
    )
    assert found == [target]
    after = _docs(sim)
    changed = after[7]
    assert changed["status"] == "completed"
    assert changed["output"]["post_call_data"]["summary"]["status"] == "Interested"  # type: ignore[index]
    assert changed["modified"] > before[7]["modified"]  # type: ignore[operator]
    assert list(changed) == list(before[7])  # the fields keep their order
    assert [d for i, d in enumerate(after) if i != 7] == [d for i, d in enumerate(before) if i != 7]


def test_update_without_bump_keeps_modified_and_survives_a_re_render() -> None:
    sim = Simulator(20)
    target = sim.task_ids()[3]
    modified = _docs(sim)[3]["modified"]
    sim.update(target, bump=False, assignee="agent-99")
    sim.strip_ids = True  # every task is rendered again
    doc = _docs(sim)[3]
    assert (doc["assignee"], doc["modified"]) == ("agent-99", modified)


async def test_a_status_update_is_what_the_legacy_status_filter_sees() -> None:
    async with serve(
        tasks=30, legacy_filters=True, token=TOKEN, org_handle=ORG, space_token=SPACE
    ) as sim:
        target = sim.task_ids()[0]
        sim.update(target, status="hold")
        async with make_client(sim) as client:
            # With legacy filters the server's ``status`` parameter (``outcome=``) is the status.
            page = await client.get_tasks(SPACE, page_size=50, outcome="hold")
    assert target in [task.task_id for task in page.data]


def test_settle_leaves_open_statuses_only_at_the_head() -> None:
    sim = Simulator(2000)
    statuses = [d["status"] for d in _docs(sim)]
    opened = sum(s in ("pending", "in_progress", "hold") for s in statuses[100:])
    assert sim.settle(keep=100) == opened > 0
    after = [d["status"] for d in _docs(sim)]
    assert after[:100] == statuses[:100]
    assert not {"pending", "in_progress", "hold"} & set(after[100:])
    assert Counter(after[100:])["completed"] == Counter(statuses[100:])["completed"] + opened
