"""The split's hold-back (mxflow.bulk.IN_FLIGHT_SECONDS) on in-memory fakes: a flow starts only once the
payment started a window earlier is through validation; the split waits, then goes on."""
from __future__ import annotations

import dataclasses

from mxflow import bulk
from mxflow_local.sample_messages import bulk_credit_transfer


def test_the_split_waits_for_the_payment_a_window_earlier_to_be_through_validation(lifecycle_with, settings, ports,
                                                                                   monkeypatch):
    lifecycle = lifecycle_with(dataclasses.replace(settings, bulk_start_rate=1.0))   # window 10, a look every 2
    _created, receipt = lifecycle.receive("client-a", bulk_credit_transfer([f"{n}.00" for n in range(1, 15)]))
    payment_ids = [p["paymentId"] for p in receipt["payments"]]
    held: list[tuple[int, str]] = []     # (flows started, status of the payment a window earlier) at each wait

    def sleep(seconds: float) -> None:
        if seconds == 0.5:               # the hold-back's look (the pace's sleeps are not waits on a payment)
            started = len(ports.workflow.flows)
            held.append((started, ports.store.get(payment_ids[started - 10])["status"]))
            for flow in ports.workflow.flows:    # the flows started run meanwhile: validated and parked
                ports.store._records[flow["paymentId"]]["status"] = "PDNG"

    monkeypatch.setattr(bulk.time, "sleep", sleep)
    result = lifecycle.bulk.split(receipt["messageId"])

    assert result["done"] and result["created"] == 14
    assert held == [(10, "RCVD")]        # one wait, after 10 starts, while the first payment was RCVD
    assert [f["paymentId"] for f in ports.workflow.flows] == payment_ids   # then every flow, in order
