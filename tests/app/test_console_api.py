"""The console's routes through the ApiFunction with moto behind it (mxflow.queries on the DynamoDB and
Step Functions adapters): GET /payments, GET /payments/{id}/execution, GET /reason-codes, and a
person's token acting for the API client it names, or the stack's default one."""
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


def person(**extra):
    return {"sub": "u-1", "username": "alice", "client_id": "console-app-client", "token_use": "access",
            "scope": "openid payments/read payments/decide", **extra}


def test_a_person_acts_for_the_api_client_of_its_group_or_the_stacks(call_api, message, monkeypatch):
    payment_id = submit(call_api, message())[1]["paymentId"]
    mine = [payment_id]
    status, body, _ = call_api(api_event("GET", "/payments", claims=person(**{"mxflow:client": CLIENT_ID})))
    assert status == 200 and [p["paymentId"] for p in body["payments"]] == mine
    # no claim and no CONSOLE_DEFAULT_CLIENT_ID: the person acts as its app client, which owns nothing
    monkeypatch.delenv("CONSOLE_DEFAULT_CLIENT_ID", raising=False)
    assert call_api(api_event("GET", "/payments", claims=person()))[1]["payments"] == []
    # no claim naming a client: the stack's own API client (CONSOLE_DEFAULT_CLIENT_ID)
    monkeypatch.setenv("CONSOLE_DEFAULT_CLIENT_ID", CLIENT_ID)
    assert [p["paymentId"] for p in call_api(api_event("GET", "/payments", claims=person()))[1]["payments"]] == mine
    # an API client's token (no username) is its own client whatever it carries
    machine = {"sub": "other", "client_id": "other", "token_use": "access", "scope": "payments/read",
               "mxflow:client": CLIENT_ID}
    assert call_api(api_event("GET", "/payments", claims=machine))[1]["payments"] == []


def test_a_persons_decision_names_the_person(call_api, message):
    from mxflow.service import default_lifecycle

    payment_id = submit(call_api, message())[1]["paymentId"]
    lifecycle = default_lifecycle()
    assert lifecycle.validate(payment_id)["outcome"] == "await"
    lifecycle.park(payment_id, "token-1")
    claims = person(scope="openid payments/decide payments/read", **{"mxflow:client": CLIENT_ID})
    status, body, _ = payment_route(call_api, "POST", payment_id, "/reject", {"reasonCode": "AM04"}, claims=claims)
    assert status == 200 and body["decision"]["decidedBy"] == "user:alice"
    status, payment, _ = payment_route(call_api, "GET", payment_id, claims=claims)
    assert payment["history"][-1]["actor"] == "user:alice" and payment["decision"]["decidedBy"] == "user:alice"
