"""PeopleTokenFunction: the user pool's pre-token-generation trigger (V2_0) for the console's people.

Thin: mxflow.people maps the person's groups to the access token's scopes and `mxflow:client` claim.
Logs the trigger source and the granted scopes, never the person's attributes.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger

from mxflow.people import pre_token_generation

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event, context):
    answer = pre_token_generation(event)
    access = answer["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]
    logger.info("people token", extra={"triggerSource": event.get("triggerSource"), "scopes": access["scopesToAdd"]})
    return answer
