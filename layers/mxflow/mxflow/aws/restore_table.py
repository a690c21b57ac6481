"""RestoreTable (mxflow.restore) on the payment table: conditional puts that bring an item back only when
it is absent, or older than the journaled image (a lower `version`), so a restore is idempotent and never
overwrites a newer state. Used by `mxflow restore` (src/mxflow_cli/restore_cmd.py), with the operator's
credentials; no Lambda function has this permission."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mxflow.aws.clients import AwsAdapter, put_unless_condition_fails, service_errors
from mxflow.journal import to_client_item


@dataclass
class DynamoDbRestoreTable(AwsAdapter):
    service: ClassVar[str] = "dynamodb"
    table_name: str

    @service_errors
    def put_if_newer(self, item: dict) -> bool:
        item = to_client_item(item)
        kwargs = {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        if "version" in item:
            kwargs.update(ConditionExpression="attribute_not_exists(pk) OR #version < :version",
                          ExpressionAttributeNames={"#version": "version"},
                          ExpressionAttributeValues={":version": item["version"]})
        return put_unless_condition_fails(self.client, **kwargs)

    @service_errors
    def current_version(self, pk: str, sk: str) -> int | None:
        item = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                                    ProjectionExpression="#version", ExpressionAttributeNames={"#version": "version"},
                                    ConsistentRead=True).get("Item")
        if item is None:
            return None
        return int(item.get("version", {}).get("N", 0))
