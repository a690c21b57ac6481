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


def test_the_window_is_the_flows_in_flight_when_given_whatever_the_rate(lifecycle_with, settings, ports, monkeypatch):
    """BulkFlowsInFlight (the local runtime's window): at 1,000 a second and a window of 4, the split waits
    after 4 starts, and looks again every 4 // IN_FLIGHT_CHECKS = 1 start, at the payment 4 flows earlier."""
    lifecycle = lifecycle_with(dataclasses.replace(settings, bulk_start_rate=1000.0, bulk_flows_in_flight=4))
    assert bulk.flows_in_flight(lifecycle.settings) == 4
    assert bulk.flows_in_flight(dataclasses.replace(settings, bulk_start_rate=2.0)) == 20   # 0: the rate x 10 s
    _created, receipt = lifecycle.receive("client-a", bulk_credit_transfer([f"{n}.00" for n in range(1, 8)]))
    payment_ids = [p["paymentId"] for p in receipt["payments"]]
    held: list[tuple[int, str]] = []

    def sleep(seconds: float) -> None:
        if seconds == 0.5:               # the hold-back's look
            started = len(ports.workflow.flows)
            held.append((started, ports.store.get(payment_ids[started - 4])["status"]))
            # only the oldest flow in flight gets through meanwhile: the split goes on one flow at a time
            ports.store._records[payment_ids[started - 4]]["status"] = "PDNG"

    monkeypatch.setattr(bulk.time, "sleep", sleep)
    result = lifecycle.bulk.split(receipt["messageId"])

    assert result["done"] and result["created"] == 7
    assert held == [(4, "RCVD"), (5, "RCVD"), (6, "RCVD")]   # never more than 4 flows not through validation
    assert [f["paymentId"] for f in ports.workflow.flows] == payment_ids
