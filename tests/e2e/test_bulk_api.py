"""Messages with several transactions (issue 13) through the local HTTP API on the application's own
template: one payment per transaction, each with its own flow and decision; the same message again, another
message under the same identity, a message rejected whole at its group checks; GET /messages/{id} and the
group pacs.002 checked against the official XSD and the payments' own outcomes."""
from __future__ import annotations

import time
from decimal import Decimal

from mxflow.iso20022 import parse_message, validate_schema
from mxflow_local.sample_messages import bulk_credit_transfer

BAD_IBAN = "FR1420041010050500013M02607"  # check digits of FR1420041010050500013M02606 broken: AC01


def _texts(element, name: str) -> list[str]:
    return element.xpath(f".//*[local-name()='{name}']/text()")


def _wait_for_group(client, message_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = client.request("GET", f"/messages/{message_id}").json
        if "groupStatus" in view or time.monotonic() > deadline:
            return view
        time.sleep(0.2)


def _group_report(client, registry, message_id: str):
    reply = client.request("GET", f"/messages/{message_id}/messages/pacs.002")
    assert reply.status == 200, reply.body
    parsed = parse_message(reply.body)
    assert validate_schema(parsed, registry) == [], "the group pacs.002 is not valid against its official XSD"
    return parsed


def test_each_transaction_is_a_payment_decided_on_its_own_and_the_group_answer_is_part(client, registry):
    amounts = ["1250.00", "310.45", "99.99", "4000.00"]
    message = bulk_credit_transfer(amounts, creditor_ibans={2: BAD_IBAN})
    first = client.submit(message)
    assert first.status == 202, first.body
    receipt = first.json
    message_id = receipt["messageId"]
    payment_ids = [p["paymentId"] for p in receipt["payments"]]
    assert len(set(payment_ids)) == 4 and receipt["links"]["self"] == f"/messages/{message_id}"
    assert client.request("GET", f"/messages/{message_id}").json["numberOfTransactions"] == 4

    # the same bytes again: 200 and the same body; other bytes under the same identity: 409 AM05
    again = client.submit(message)
    assert again.status == 200 and again.json == receipt
    msg_id = _texts(parse_message(message).root, "MsgId")[0]
    other = bulk_credit_transfer(amounts, msg_id=msg_id)
    conflict = client.submit(other)
    assert conflict.status == 409 and conflict.json["code"] == "AM05", conflict.body

    payments = [client.wait_for_status(pid, "PDNG", "RJCT") for pid in payment_ids]
    assert [p["status"] for p in payments] == ["PDNG", "PDNG", "RJCT", "PDNG"], payments
    assert [Decimal(p["amount"]) for p in payments] == [Decimal(a) for a in amounts]
    assert payments[2]["reason"]["code"] == "AC01"
    assert client.approve(payment_ids[0]).status == 200
    assert client.reject(payment_ids[1], "AM04").status == 200
    assert client.cancel(payment_ids[3], "CUST").status == 200
    assert client.wait_for_status(payment_ids[0], "ACSC")["status"] == "ACSC"

    # each payment's received message is its own transaction, cut from the archived message
    own = parse_message(client.message(payment_ids[0], "received").body)
    assert _texts(own.root, "NbOfTxs") == ["1"] and _texts(own.root, "IntrBkSttlmAmt") == ["1250.00"]

    view = _wait_for_group(client, message_id)
    assert view["groupStatus"] == "PART", view
    assert view["counts"] == {"ACSC": 1, "CANC": 1, "RJCT": 2}
    assert [p["paymentId"] for p in view["payments"]] == payment_ids
    assert [p["status"] for p in view["payments"]] == ["ACSC", "RJCT", "RJCT", "CANC"]
    assert "pacs.002" in view["messages"]
    report = _group_report(client, registry, message_id)
    assert _texts(report.root, "GrpSts") == ["PART"]
    assert _texts(report.root, "OrgnlMsgId") == [msg_id]
    assert _texts(report.root, "TxSts") == ["ACSC", "RJCT", "RJCT", "CANC"]  # each payment's own status
    assert _texts(report.root, "OrgnlUETR") == [p["uetr"] for p in payments]


def test_a_message_failing_its_group_checks_is_rejected_whole_and_creates_no_payment(client, registry):
    message = bulk_credit_transfer(["10.00", "20.00", "30.00"], total="70.00")  # TtlIntrBkSttlmAmt != the sum
    reply = client.submit(message)
    assert reply.status == 202, reply.body
    assert reply.json["status"] == "RJCT" and reply.json["payments"] == []
    view = client.request("GET", f"/messages/{reply.json['messageId']}").json
    assert view["groupStatus"] == "RJCT" and view["payments"] == [] and view["counts"] == {}
    assert view["reason"]["code"] and view["errors"]
    report = _group_report(client, registry, reply.json["messageId"])
    assert _texts(report.root, "GrpSts") == ["RJCT"]
    assert _texts(report.root, "Cd") == [view["reason"]["code"]]
    assert client.submit(message).status == 200  # the same message again: the same answer


def test_all_approved_is_acsc_and_another_clients_message_is_404(client, client_for, registry):
    message = bulk_credit_transfer(["5.00", "6.00"])
    receipt = client.submit(message).json
    for payment in receipt["payments"]:
        client.wait_for_status(payment["paymentId"], "PDNG")
        assert client.approve(payment["paymentId"]).status == 200
    view = _wait_for_group(client, receipt["messageId"])
    assert view["groupStatus"] == "ACSC" and view["counts"] == {"ACSC": 2}
    assert _texts(_group_report(client, registry, receipt["messageId"]).root, "GrpSts") == ["ACSC"]
    stranger = client_for(["payments/read"], client_id="someone-else")
    assert stranger.request("GET", f"/messages/{receipt['messageId']}").status == 404
