"""The local token issuer and the Cognito-authorizer semantics (mxflow_local.auth)."""
from __future__ import annotations

import json
import os
import stat
import time

import jwt
import pytest

from mxflow_local.auth import (
    CognitoAuthorizer,
    LocalTokenIssuer,
    NoRunningServer,
    gateway_claims,
    load_published_issuer,
    publish_signing_key,
    signing_key_path,
    withdraw_signing_key,
)

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"


@pytest.fixture(scope="module")
def issuer():
    return LocalTokenIssuer.generate(ISSUER)


def test_access_token_has_cognito_client_credentials_claims(issuer):
    token = issuer.issue_token(["items/read", "items/write"], "client-a", ttl=600)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == issuer.kid
    claims = issuer.verify(token)
    assert claims["token_use"] == "access"
    assert claims["client_id"] == claims["sub"] == "client-a"
    assert claims["scope"] == "items/read items/write"
    assert claims["iss"] == ISSUER
    assert claims["exp"] - claims["iat"] == 600


def test_any_route_scope_matching_any_token_scope_authorizes(issuer):
    authorizer = CognitoAuthorizer(issuer)
    token = issuer.issue_token(["items/read"], "c")
    outcome = authorizer.authorize(f"Bearer {token}", ["items/write", "items/read"])
    assert outcome.status == 200 and outcome.claims["client_id"] == "c"
    assert authorizer.authorize(token, ["items/read"]).status == 200  # raw token without "Bearer" too


def test_wrong_scope_is_403_and_bad_tokens_are_401(issuer):
    authorizer = CognitoAuthorizer(issuer)
    assert authorizer.authorize(f"Bearer {issuer.issue_token(['items/read'])}", ["items/write"]).status == 403
    assert authorizer.authorize(None, ["items/read"]).status == 401
    assert authorizer.authorize("Bearer not.a.jwt", ["items/read"]).status == 401
    other = LocalTokenIssuer.generate(ISSUER)  # same issuer, other key
    assert authorizer.authorize(other.issue_token(["items/read"]), ["items/read"]).status == 401
    forged = LocalTokenIssuer(other._private_key, issuer=ISSUER, kid=issuer.kid)  # known kid, wrong key
    assert authorizer.authorize(forged.issue_token(["items/read"]), ["items/read"]).status == 401
    foreign = LocalTokenIssuer(issuer._private_key, issuer="https://elsewhere", kid=issuer.kid)
    assert authorizer.authorize(foreign.issue_token(["items/read"]), ["items/read"]).status == 401
    unsigned = jwt.encode({"token_use": "access", "scope": "items/read", "iss": ISSUER,
                           "exp": int(time.time()) + 60, "iat": int(time.time())}, None, algorithm="none")
    assert authorizer.authorize(unsigned, ["items/read"]).status == 401


def test_expired_token_is_401_with_aws_message(issuer):
    authorizer = CognitoAuthorizer(issuer)
    token = issuer.issue_token(["items/read"], ttl=60, now=time.time() - 3600)
    outcome = authorizer.authorize(f"Bearer {token}", ["items/read"])
    assert (outcome.status, outcome.message) == (401, "The incoming token has expired")


def test_token_kind_must_fit_the_method(issuer):
    authorizer = CognitoAuthorizer(issuer)
    id_token = issuer.issue_token([], "app", token_use="id")
    access = issuer.issue_token(["items/read"], "app")
    assert authorizer.authorize(id_token, ["items/read"]).status == 401  # scopes need an access token
    assert authorizer.authorize(id_token, []).status == 200  # no scopes: ID token
    assert authorizer.authorize(access, []).status == 401  # ... and not an access token


def test_gateway_claims_are_strings_with_java_dates():
    claims = gateway_claims({"sub": "local", "exp": 1513495692, "iat": 1513492092, "auth_time": 1513492092,
                             "version": 2, "scope": "a/b c/d"})
    assert claims["exp"] == "Sun Dec 17 07:28:12 UTC 2017"
    assert claims["iat"] == "Sun Dec 17 06:28:12 UTC 2017"
    assert claims["auth_time"] == "1513492092" and claims["version"] == "2" and claims["scope"] == "a/b c/d"


def test_published_key_round_trip_is_private_and_withdrawn(tmp_path, issuer):
    path = publish_signing_key(issuer, url="http://127.0.0.1:1", directory=tmp_path)
    assert path == signing_key_path(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded, state = load_published_issuer(tmp_path)
    assert state["url"] == "http://127.0.0.1:1" and state["pid"] == os.getpid()
    assert issuer.verify(loaded.issue_token(["x/y"]))["scope"] == "x/y"
    withdraw_signing_key(LocalTokenIssuer.generate(ISSUER), tmp_path)  # another server's: kept
    assert path.exists()
    withdraw_signing_key(issuer, tmp_path)
    assert not path.exists()
    with pytest.raises(NoRunningServer, match="no running 'mxflow local up'"):
        load_published_issuer(tmp_path)


def test_key_of_a_dead_server_is_refused(tmp_path, issuer):
    path = publish_signing_key(issuer, url="http://127.0.0.1:1", directory=tmp_path)
    state = json.loads(path.read_text())
    state["pid"] = 2**22 + 12345  # above pid_max's default: no such process
    path.write_text(json.dumps(state))
    with pytest.raises(NoRunningServer, match="no longer running"):
        load_published_issuer(tmp_path)
