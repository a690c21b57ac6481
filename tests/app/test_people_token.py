"""The console's Cognito pre-token-generation trigger (PeopleTokenFunction, mxflow/people.py) on events
of the documented V2_0 shape (Cognito developer guide, "Pre token generation Lambda trigger": request
userAttributes, groupConfiguration, scopes; response claimsAndScopeOverrideDetails)."""
from __future__ import annotations

import copy

import pytest

from mxflow.people import ACTING_CLIENT_CLAIM, AmbiguousClient, pre_token_generation


def v2_event(groups: list[str], scopes: list[str] | None = None, source: str = "TokenGeneration_HostedAuth") -> dict:
    return {
        "version": "2", "triggerSource": source, "region": "us-east-1", "userPoolId": "us-east-1_EXAMPLE",
        "userName": "ana", "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "consoleclient"},
        "request": {
            "userAttributes": {"sub": "0000-1111", "email": "ana@example.com", "cognito:user_status": "CONFIRMED"},
            "groupConfiguration": {"groupsToOverride": groups, "iamRolesToOverride": [], "preferredRole": None},
            "scopes": scopes if scopes is not None else ["openid", "aws.cognito.signin.user.admin"],
        },
        "response": {"claimsAndScopeOverrideDetails": None},
    }


def access_of(answer: dict) -> dict:
    return answer["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]


def test_each_scope_group_grants_its_scope_and_nothing_else():
    answer = pre_token_generation(v2_event(["payments-read", "payments-decide", "auditors"]))
    assert access_of(answer) == {"scopesToAdd": ["payments/decide", "payments/read"]}
    every = pre_token_generation(v2_event(["payments-submit", "payments-read", "payments-decide", "payments-operate"]))
    assert access_of(every)["scopesToAdd"] == ["payments/decide", "payments/operate", "payments/read", "payments/submit"]


def test_a_person_without_groups_gets_no_payments_scope_and_asked_for_scopes_are_suppressed():
    answer = pre_token_generation(v2_event([], scopes=["openid", "payments/decide", "payments/read"]))
    assert access_of(answer) == {"scopesToAdd": [], "scopesToSuppress": ["payments/decide", "payments/read"]}
    reader = pre_token_generation(v2_event(["payments-read"], scopes=["openid", "payments/read", "payments/operate"]))
    assert access_of(reader) == {"scopesToAdd": ["payments/read"], "scopesToSuppress": ["payments/operate"]}


def test_a_client_group_names_the_api_client_in_the_access_token_only():
    answer = pre_token_generation(v2_event(["payments-read", "client-4abc1def"]))
    details = answer["response"]["claimsAndScopeOverrideDetails"]
    assert details["accessTokenGeneration"]["claimsToAddOrOverride"] == {ACTING_CLIENT_CLAIM: "4abc1def"}
    assert "idTokenGeneration" not in details
    # no client group: no claim (the API acts for CONSOLE_DEFAULT_CLIENT_ID); a bare prefix is no client
    assert "claimsToAddOrOverride" not in access_of(pre_token_generation(v2_event(["payments-read", "client-"])))


def test_two_client_groups_refuse_the_sign_in():
    with pytest.raises(AmbiguousClient):
        pre_token_generation(v2_event(["payments-read", "client-a", "client-b"]))


def test_the_answer_is_the_event_with_its_response_and_the_event_is_not_changed():
    event = v2_event(["payments-operate"], source="TokenGeneration_RefreshTokens")
    before = copy.deepcopy(event)
    answer = pre_token_generation(event)
    assert event == before
    assert {k: v for k, v in answer.items() if k != "response"} == {k: v for k, v in before.items() if k != "response"}


def test_the_api_reads_the_claim_the_trigger_writes(load_handler):
    api = load_handler("api")
    assert api.ACTING_CLIENT_CLAIM == ACTING_CLIENT_CLAIM == "mxflow:client"


def test_the_handler_answers_cognito(load_handler, context):
    handler = load_handler("people_token")
    answer = handler.lambda_handler(v2_event(["payments-read", "client-abc"]), context)
    assert access_of(answer) == {"scopesToAdd": ["payments/read"], "claimsToAddOrOverride": {ACTING_CLIENT_CLAIM: "abc"}}
