"""The functions' configuration, read from their environment (template.yaml Globals.Function).

Pure: the environment is a mapping passed in (os.environ by default); nothing here calls AWS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Mapping

from mxflow.iso20022.builders import CBPR_PLUS_VERSIONS, MessageVersions


def current_region(env: Mapping[str, str] = os.environ) -> str:
    """The invocation's Region (Lambda sets AWS_REGION)."""
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True)
class Settings:
    """What the lifecycle and its adapters are configured with. Frozen and hashable: the composition
    root (mxflow.service) keeps one lifecycle per distinct Settings."""

    operator_bic: str = "MXFLGB2LXXX"
    profile: str = "iso"
    decision_timeout_seconds: int = 86400
    auto_approve_max_amount: Decimal | None = None
    max_message_bytes: int = 1048576
    region: str = "us-east-1"
    payment_table: str | None = None
    archive_bucket: str | None = None
    archive_kms_key_id: str | None = None
    state_machine_arn: str | None = None   # the anchor, PaymentStateMachine (STANDARD)
    payment_flow_arn: str | None = None    # PaymentFlow (EXPRESS)
    release_queue_url: str | None = None
    events_topic_arn: str | None = None
    message_versions: MessageVersions = CBPR_PLUS_VERSIONS  # what the builders emit (MXFLOW_*_VERSION)
    # The return leg (mxflow/recalls.py, mxflow/engine.py): "queue" = ACSC once sent to the release queue,
    # "engine" = ACSP until the payment engine's pacs.002 says ACSC or RJCT (RELEASE_CONFIRMATION).
    release_confirmation: str = "queue"

    @classmethod
    def from_environ(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        auto = (env.get("AUTO_APPROVE_MAX_AMOUNT") or "").strip()
        try:
            auto_amount = Decimal(auto) if auto else None
        except InvalidOperation:
            raise ValueError("AUTO_APPROVE_MAX_AMOUNT must be empty or a decimal amount") from None
        return cls(
            operator_bic=env.get("OPERATOR_BIC") or cls.operator_bic,
            profile=env.get("VALIDATION_PROFILE") or cls.profile,
            decision_timeout_seconds=int(env.get("DECISION_TIMEOUT_SECONDS") or cls.decision_timeout_seconds),
            auto_approve_max_amount=auto_amount,
            max_message_bytes=int(env.get("MAX_MESSAGE_BYTES") or cls.max_message_bytes),
            region=current_region(env),
            payment_table=env.get("PAYMENT_TABLE") or None,
            archive_bucket=env.get("ARCHIVE_BUCKET") or None,
            archive_kms_key_id=env.get("ARCHIVE_KMS_KEY_ID") or None,
            state_machine_arn=env.get("STATE_MACHINE_ARN") or None,
            payment_flow_arn=env.get("PAYMENT_FLOW_ARN") or None,
            release_queue_url=env.get("RELEASE_QUEUE_URL") or None,
            events_topic_arn=env.get("EVENTS_TOPIC_ARN") or None,
            message_versions=MessageVersions.from_environ(env),
            release_confirmation=_release_confirmation(env.get("RELEASE_CONFIRMATION")),
        )

    @property
    def engine_confirms(self) -> bool:
        """True when a release is ACSC only once the payment engine says so (ReleaseConfirmation=engine)."""
        return self.release_confirmation == "engine"


RELEASE_CONFIRMATIONS = ("queue", "engine")


def _release_confirmation(value: str | None) -> str:
    value = (value or "queue").strip()
    if value not in RELEASE_CONFIRMATIONS:
        raise ValueError(f"RELEASE_CONFIRMATION must be one of {', '.join(RELEASE_CONFIRMATIONS)}")
    return value
