"""Reads never wait for a write transaction: while another thread holds the store's write
transaction open (as a controller tick does), status and list pages are still answered, from a
read connection of their own, and show what was committed before it."""

from __future__ import annotations

import threading
from typing import Any

from tests.integration.helpers import manifest, wait_for


def test_status_and_list_answer_while_a_write_transaction_is_open(runtime: Any) -> None:
    svc = runtime.service
    m = manifest("seen", ["sleep", "300"])
    m["spec"]["template"]["nodeSelector"] = {"nowhere": "x"}  # never fits: fails, starts nothing
    svc.submit(m)
    assert wait_for(svc, "seen").phase.value == "Failed"  # Unschedulable: nothing writes to it after
    entered, release = threading.Event(), threading.Event()

    def long_transaction() -> None:
        with runtime.store.tx() as c:
            c.execute("UPDATE jobs SET message = 'uncommitted' WHERE name = 'seen'")
            entered.set()
            release.wait(120)

    writer = threading.Thread(target=long_transaction, daemon=True)
    writer.start()
    assert entered.wait(60)
    answers: dict[str, Any] = {}

    def read() -> None:
        answers["get"] = svc.get("default", "seen")
        answers["page"] = svc.list_page(limit=10)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)  # a bound for the failure case only: the read must not need the writer
    try:
        assert not reader.is_alive(), "a read waited for the open write transaction"
        assert writer.is_alive() and not release.is_set()  # ... which was still open
        assert answers["get"].name == "seen" and answers["get"].message != "uncommitted"
        assert [j.name for j in answers["page"].items] == ["seen"]
    finally:
        release.set()
        writer.join(60)
    assert svc.get("default", "seen").message == "uncommitted"  # committed now: visible
