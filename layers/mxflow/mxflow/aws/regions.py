"""RegionStore (mxflow.ports) on the payment table, and the RecoveryWorkflow on the recovery state machine
(docs/regions.md). Both live in the global table, so every Region's replica has them:

- one health record per Region: `pk` = "region#<region>", `sk` = "REGION", written by that Region's
  health function only (a plain PutItem: nobody else writes it);
- one routing item: `pk` = "routing", `sk` = "ROUTING": the traffic owner, the epoch, the Regions
  failed over and when their takeover finished; every change is a PutItem conditional on the epoch it
  read (under MRSC that condition holds across Regions; under MREC in the replica written).

Neither item has the in-flight, client or suspended index keys, so no index lists them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from botocore.exceptions import ClientError

from mxflow.aws.clients import AwsAdapter, error_code, put_unless_condition_fails, service_errors
from mxflow.aws.dynamodb import _from_item, _to_item
from mxflow.errors import RegionConflict

REGION_SK = "REGION"
ROUTING_KEY = {"pk": "routing", "sk": "ROUTING"}
ROUTING_HISTORY_KEPT = 20


def region_key(region: str) -> dict:
    return {"pk": f"region#{region}", "sk": REGION_SK}


def superseded_condition(state: Mapping[str, Any]) -> tuple[str, dict]:
    """The condition of a health record's write (RegionStore.put_region_state): the record there is of an
    earlier probe, and its lease ends no later than this one's (none there, or none in either)."""
    values = {":at": state["lastProbeAt"]}
    if state.get("leaseUntil"):
        values[":lease"] = state["leaseUntil"]
        lease = "(attribute_not_exists(leaseUntil) OR leaseUntil <= :lease)"
    else:
        lease = "attribute_not_exists(leaseUntil)"
    return f"attribute_not_exists(lastProbeAt) OR (lastProbeAt < :at AND {lease})", values


def _plain(item: Mapping[str, Any] | None) -> dict | None:
    if not item:
        return None
    return {k: v for k, v in _from_item(item).items() if k not in ("pk", "sk")}


@dataclass
class DynamoDbRegionStore(AwsAdapter):
    service: ClassVar[str] = "dynamodb"
    table_name: str

    @service_errors
    def region_state(self, region: str) -> dict | None:
        response = self.client.get_item(TableName=self.table_name, Key=_to_item(region_key(region)),
                                        ConsistentRead=True)
        return _plain(response.get("Item"))

    @service_errors
    def put_region_state(self, region: str, state: Mapping[str, Any]) -> bool:
        # ISO 8601 UTC times of one format (mxflow.clock.format_utc) compare as strings
        condition, values = superseded_condition(state)
        return put_unless_condition_fails(
            self.client, TableName=self.table_name,
            Item=_to_item({**region_key(region), "region": region, **dict(state)}),
            ConditionExpression=condition, ExpressionAttributeValues=_to_item(values))

    @service_errors
    def routing(self) -> dict | None:
        response = self.client.get_item(TableName=self.table_name, Key=_to_item(ROUTING_KEY), ConsistentRead=True)
        return _plain(response.get("Item"))

    @service_errors
    def init_routing(self, routing: Mapping[str, Any]) -> dict:
        put_unless_condition_fails(self.client, TableName=self.table_name,
                                   Item=_to_item({**ROUTING_KEY, **dict(routing)}),
                                   ConditionExpression="attribute_not_exists(pk)")
        return self.routing() or dict(routing)

    def _put_if_epoch(self, item: Mapping[str, Any], epoch: int | None) -> None:
        """Write the routing item if its epoch is still `epoch` (None: if there is none yet)."""
        if epoch is None:
            condition, values = "attribute_not_exists(pk)", None
        else:
            condition, values = "epoch = :epoch", _to_item({":epoch": epoch})
        kwargs = {"TableName": self.table_name, "Item": _to_item({**ROUTING_KEY, **dict(item)}),
                  "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**kwargs)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise RegionConflict("the routing epoch moved meanwhile") from None
            raise

    @service_errors
    def claim_traffic(self, *, to_region: str, expected_epoch: int, at: str,
                      failed_over: Mapping[str, Any] | None, seen_epoch: int = 0) -> dict:
        current = self.routing()
        if current is not None and int(current.get("epoch", 1)) != expected_epoch:
            raise RegionConflict(f"the routing epoch is {current.get('epoch')}, not {expected_epoch}")
        base = current or {"epoch": 1}
        epoch = max(expected_epoch, seen_epoch) + 1
        claimed = {**base, "trafficOwner": to_region, "epoch": epoch, "since": at}
        entry = {"at": at, "trafficOwner": to_region, "epoch": epoch}
        if failed_over:
            record = {"epoch": epoch, "at": at, "by": to_region}
            if failed_over.get("leaseUntil"):
                record["leaseUntil"] = failed_over["leaseUntil"]
            claimed["failedOver"] = {**(base.get("failedOver") or {}), failed_over["region"]: record}
            entry["failedOver"] = failed_over["region"]
        claimed["history"] = ([*(base.get("history") or []), entry])[-ROUTING_HISTORY_KEPT:]
        self._put_if_epoch(claimed, None if current is None else expected_epoch)
        return claimed

    @service_errors
    def mark_recovered(self, region: str, epoch: int, at: str) -> None:
        for _ in range(3):
            current = self.routing() or {}
            done = (current.get("failedOver") or {}).get(region)
            if not done or int(done.get("epoch", 0)) != epoch or done.get("completedAt"):
                return
            updated = {**current, "failedOver": {**current["failedOver"], region: {**done, "completedAt": at}}}
            try:
                self._put_if_epoch(updated, int(current.get("epoch", 1)))
                return
            except RegionConflict:
                continue


@dataclass
class StepFunctionsRecovery(AwsAdapter):
    """RecoveryWorkflow: the recovery state machine and the payment anchors of one Region."""

    service: ClassVar[str] = "stepfunctions"
    recovery_arn: str | None
    anchor_arn: str | None

    def _start(self, arn: str, name: str, payload: Mapping[str, Any]) -> str:
        try:
            return self.client.start_execution(stateMachineArn=arn, name=name,
                                               input=json.dumps(payload, sort_keys=True))["executionArn"]
        except ClientError as error:
            # Same name, same input, still running: AWS answers with the running execution; otherwise
            # ExecutionAlreadyExists -- the one this call would have started exists either way.
            if error_code(error) == "ExecutionAlreadyExists":
                head, _, machine = arn.rpartition(":stateMachine:")
                return f"{head}:execution:{machine}:{name}"
            raise

    @service_errors
    def start_recovery(self, name: str, recovery_input: Mapping[str, Any]) -> str | None:
        return self._start(self.recovery_arn, name, recovery_input)

    @service_errors
    def start_anchor(self, name: str, anchor_input: Mapping[str, Any]) -> None:
        self._start(self.anchor_arn, name, anchor_input)
