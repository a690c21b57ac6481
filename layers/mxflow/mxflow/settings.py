"""The functions' configuration, read from their environment (template.yaml Globals.Function).

Pure: the environment is a mapping passed in (os.environ by default); nothing here calls AWS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
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
    # Messages with several transactions (mxflow.bulk): the split state machine, the most transactions
    # a message may carry, how many payments' flows the split starts per second, and how many it keeps
    # in flight at most (0: the rate times mxflow.bulk.IN_FLIGHT_SECONDS).
    split_state_machine_arn: str | None = None
    max_bulk_transactions: int = 10000
    bulk_start_rate: float = 100.0
    bulk_flows_in_flight: int = 0
    # Two Regions (docs/regions.md; template.yaml "two Regions" section). No peer Region: one Region,
    # and nothing below changes what a payment does.
    primary_region: str | None = None
    peer_region: str | None = None
    region_mode: str = "active-passive"          # or active-active
    table_consistency: str = "EVENTUAL"          # the global table's: EVENTUAL (MREC) or STRONG (MRSC)
    health_failures: int = 3                     # N: consecutive failed probes that fail a Region over
    health_recoveries: int = 3                   # M: consecutive good probes before a Region counts again
    health_slow_ms: int = 2000                   # a probe slower than this is degraded, not failed
    health_probe_seconds: float = 60.0           # how often a Region probes itself
    replication_settle_seconds: float = 45.0     # what a takeover waits for the failed Region's last writes
    recovery_state_machine_arn: str | None = None
    probe_state_machine_arn: str | None = None
    probe_queue_url: str | None = None
    peer_archive_bucket: str | None = None

    @property
    def two_regions(self) -> bool:
        return bool(self.peer_region) and self.peer_region != self.region

    def in_region(self, region: str) -> "Settings":
        """The settings of the same stack in `region` (the peer's): the state machines and queues by
        their fixed names there, the peer's archive bucket. Used to write a payment in its owner
        Region (docs/regions.md, "Where a write goes")."""
        if region == self.region:
            return self
        return replace(
            self, region=region, primary_region=self.primary_region, peer_region=self.region,
            state_machine_arn=_in_region(self.state_machine_arn, self.region, region),
            payment_flow_arn=_in_region(self.payment_flow_arn, self.region, region),
            split_state_machine_arn=_in_region(self.split_state_machine_arn, self.region, region),
            recovery_state_machine_arn=_in_region(self.recovery_state_machine_arn, self.region, region),
            probe_state_machine_arn=_in_region(self.probe_state_machine_arn, self.region, region),
            release_queue_url=_in_region(self.release_queue_url, self.region, region),
            probe_queue_url=_in_region(self.probe_queue_url, self.region, region),
            archive_bucket=self.peer_archive_bucket, peer_archive_bucket=self.archive_bucket,
            archive_kms_key_id=None)   # the peer bucket's default key (a KMS key is Regional)
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
            split_state_machine_arn=env.get("BULK_SPLIT_ARN") or None,
            max_bulk_transactions=int(env.get("MAX_BULK_TRANSACTIONS") or cls.max_bulk_transactions),
            bulk_start_rate=float(env.get("BULK_START_RATE") or cls.bulk_start_rate),
            bulk_flows_in_flight=int(env.get("BULK_FLOWS_IN_FLIGHT") or cls.bulk_flows_in_flight),
            primary_region=env.get("PRIMARY_REGION") or None,
            peer_region=env.get("PEER_REGION") or None,
            region_mode=env.get("REGION_MODE") or cls.region_mode,
            table_consistency=env.get("TABLE_CONSISTENCY") or cls.table_consistency,
            health_failures=int(env.get("HEALTH_FAILURES") or cls.health_failures),
            health_recoveries=int(env.get("HEALTH_RECOVERIES") or cls.health_recoveries),
            health_slow_ms=int(env.get("HEALTH_SLOW_MS") or cls.health_slow_ms),
            health_probe_seconds=float(env.get("HEALTH_PROBE_SECONDS") or cls.health_probe_seconds),
            replication_settle_seconds=float(env.get("REPLICATION_SETTLE_SECONDS")
                                             or cls.replication_settle_seconds),
            recovery_state_machine_arn=env.get("RECOVERY_STATE_MACHINE_ARN") or None,
            probe_state_machine_arn=env.get("PROBE_STATE_MACHINE_ARN") or None,
            probe_queue_url=env.get("PROBE_QUEUE_URL") or None,
            peer_archive_bucket=env.get("PEER_ARCHIVE_BUCKET") or None,
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

def _in_region(name: str | None, here: str, there: str) -> str | None:
    """An ARN or queue URL of this stack in another Region: the same name, the other Region."""
    if not name:
        return name
    return name.replace(f":{here}:", f":{there}:").replace(f".{here}.", f".{there}.")
