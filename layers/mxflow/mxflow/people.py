"""People's access tokens for the operations console (issue 14): the Cognito pre-token-generation
trigger (V2_0 event; PeopleTokenFunction in template.yaml) turns a person's user-pool groups into the
access token's scopes and the API client the person acts for.

- A group named for a scope (`payments-read` -> `payments/read`, and submit, decide, operate) grants it:
  the console's app client may ask for `openid` only, so the payments scopes come from the groups alone;
  any payments scope in the request that no group grants is suppressed.
- A group `client-<API client id>` names the client whose payments the person sees and decides on: it
  is written as the access token's `mxflow:client` claim (functions/api/app.py, people_client). No such
  group: no claim, and the API acts for the stack's own client (CONSOLE_DEFAULT_CLIENT_ID). Two such
  groups: the sign-in is refused (AmbiguousClient), never a guess.

Pure: the event in, the response out (the event's shape: Cognito's developer guide, "Pre token
generation Lambda trigger", version 2 request and response).
"""
from __future__ import annotations

from typing import Any, Mapping

SCOPE_GROUPS = {
    "payments-submit": "payments/submit",
    "payments-read": "payments/read",
    "payments-decide": "payments/decide",
    "payments-operate": "payments/operate",
}
CLIENT_GROUP_PREFIX = "client-"
ACTING_CLIENT_CLAIM = "mxflow:client"  # functions/api/app.py reads the same claim


class AmbiguousClient(Exception):
    """A person in more than one `client-...` group: which client's payments they act on is unclear."""


def token_overrides(groups: list[str], requested_scopes: list[str] | None = None) -> dict:
    """`claimsAndScopeOverrideDetails` for a person in `groups`: the scopes their groups grant, the
    payments scopes they asked for without a group suppressed, the client claim when a group names one."""
    granted = sorted({SCOPE_GROUPS[group] for group in groups if group in SCOPE_GROUPS})
    clients = sorted({group[len(CLIENT_GROUP_PREFIX):] for group in groups
                      if group.startswith(CLIENT_GROUP_PREFIX) and len(group) > len(CLIENT_GROUP_PREFIX)})
    if len(clients) > 1:
        raise AmbiguousClient(f"this user is in {len(clients)} client groups; an administrator must leave one")
    suppressed = sorted({scope for scope in requested_scopes or []
                         if scope.startswith("payments/") and scope not in granted})
    access: dict[str, Any] = {"scopesToAdd": granted}
    if suppressed:
        access["scopesToSuppress"] = suppressed
    if clients:
        access["claimsToAddOrOverride"] = {ACTING_CLIENT_CLAIM: clients[0]}
    return {"accessTokenGeneration": access}


def pre_token_generation(event: Mapping[str, Any]) -> dict:
    """The V2_0 trigger: the event Cognito sent with its `response.claimsAndScopeOverrideDetails` filled."""
    request = event.get("request") or {}
    groups = list((request.get("groupConfiguration") or {}).get("groupsToOverride") or [])
    answer = dict(event)
    answer["response"] = {"claimsAndScopeOverrideDetails": token_overrides(groups, request.get("scopes"))}
    return answer
