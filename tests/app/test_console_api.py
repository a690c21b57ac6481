"""The console's routes through the ApiFunction with moto behind it (mxflow.queries on the DynamoDB and
Step Functions adapters): GET /payments, GET /payments/{id}/execution, GET /reason-codes, and a
person's token from the console's app client acting for its API client."""
from __future__ import annotations

from api_gateway_event import CLIENT_ID, api_event
from test_api import payment_route, submit


def listed(call_api, **query):
    return call_api(api_event("GET", "/payments", query={k: v if isinstance(v, list) else [v] for k, v in query.items()}))


def test_the_list_pages_newest_first_and_filters_on_dynamodb(call_api, message):
    made = [submit(call_api, message(currency=currency))[1]["paymentId"] for currency in ("EUR", "USD", "EUR")]
    status, body, _ = listed(call_api)
    assert status == 200 and [p["paymentId"] for p in body["payments"]] == list(reversed(made))
    assert body["nextCursor"] is None and body["counts"] == {}   # no sample yet
    status, first, _ = listed(call_api, limit="2")
    assert [p["paymentId"] for p in first["payments"]] == [made[2], made[1]] and first["nextCursor"]
    status, rest, _ = listed(call_api, limit="2", cursor=first["nextCursor"])
    assert [p["paymentId"] for p in rest["payments"]] == [made[0]]
    status, usd, _ = listed(call_api, currency="USD")
    assert [p["paymentId"] for p in usd["payments"]] == [made[1]]
    status, problem, headers = listed(call_api, status="DONE")
    assert status == 400 and headers["content-type"] == "application/problem+json" and "status" in problem["detail"]
    other = api_event("GET", "/payments", client_id="another-client")
    assert call_api(other)[1]["payments"] == []


def test_the_execution_of_a_received_payment_and_of_another_clients(call_api, message):
    payment_id = submit(call_api, message())[1]["paymentId"]
    status, body, _ = payment_route(call_api, "GET", payment_id, "/execution")
    assert status == 200 and body["paymentId"] == payment_id and body["status"] == "RCVD"
    (run,) = body["stateMachines"]   # no anchor: the payment never waited
    assert (run["name"], run["type"], [s["name"] for s in run["states"]]) == ("PaymentFlow", "EXPRESS", ["Begin"])
    status, _, _ = payment_route(call_api, "GET", payment_id, "/execution", client_id="another-client")
    assert status == 404


def test_the_reason_codes_route(call_api):
    status, body, headers = call_api(api_event("GET", "/reason-codes"))
    assert status == 200 and headers.get("Cache-Control", headers.get("cache-control")).startswith("private")
    assert {"AB06", "AM04"} <= {c["code"] for c in body["reject"]["codes"]}
    assert "DUPL" in {c["code"] for c in body["cancel"]["codes"]}


def person(client_id="console-app-client", **extra):
    return {"sub": "u-1", "username": "alice", "client_id": client_id, "token_use": "access",
            "scope": "openid payments/read payments/decide", "mxflow:client": CLIENT_ID, **extra}


def test_a_person_acts_for_the_api_client_the_trigger_named(call_api, message, monkeypatch):
    payment_id = submit(call_api, message())[1]["paymentId"]
    monkeypatch.setenv("CONSOLE_CLIENT_ID", "console-app-client")
    status, body, _ = call_api(api_event("GET", "/payments", claims=person()))
    assert status == 200 and [p["paymentId"] for p in body["payments"]] == [payment_id]
    # the claim counts only on tokens of the console's app client
    status, body, _ = call_api(api_event("GET", "/payments", claims=person(client_id="some-api-client")))
    assert status == 200 and body["payments"] == []
    monkeypatch.delenv("CONSOLE_CLIENT_ID")
    status, body, _ = call_api(api_event("GET", "/payments", claims=person()))
    assert body["payments"] == []
