"""A boto3 script, as an operator writes one, that the end-to-end tests run in its own process with the
environment `mxflow local up` prints (AWS_ENDPOINT_URL, dummy keys, Region): nothing here names the
endpoint. Each subcommand prints JSON (an object's bytes for get-object).

    python boto3_script.py wait --timeout 60 ARN...     # DescribeExecution of each, once none is RUNNING
    python boto3_script.py history ARN                  # GetExecutionHistory: [{type, state, error}]
    python boto3_script.py get-item TABLE PK SK         # GetItem (strongly consistent), plain JSON values
    python boto3_script.py get-object BUCKET KEY        # GetObject's body
    python boto3_script.py nack --times N QUEUE_URL      # an engine that takes the messages and fails, N times:
                                                        # the paymentIds received (visibility 0: back at once)
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import boto3
from boto3.dynamodb.types import TypeDeserializer

DESCRIBED = ("status", "error", "cause", "redriveCount", "redriveStatus", "redriveStatusReason")


def wait(arns: list[str], timeout: float) -> list[dict]:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described = [sfn.describe_execution(executionArn=arn) for arn in arns]
        if all(d["status"] != "RUNNING" for d in described) or time.monotonic() > deadline:
            return [{key: d.get(key) for key in DESCRIBED} for d in described]
        time.sleep(0.2)


def history(arn: str) -> list[dict]:
    pages = boto3.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    events = []
    for page in pages:
        for event in page["events"]:
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            events.append({"type": event["type"], "state": details.get("name"), "error": details.get("error")})
    return events


def get_item(table: str, pk: str, sk: str) -> dict | None:
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                                             ConsistentRead=True).get("Item")
    if item is None:
        return None
    plain = {name: TypeDeserializer().deserialize(value) for name, value in item.items()}
    return json.loads(json.dumps(plain, default=str))


def nack(queue_url: str, times: int) -> list[str]:
    sqs = boto3.client("sqs")
    seen = []
    for _ in range(times):
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                       WaitTimeSeconds=1).get("Messages", [])
        seen += [json.loads(message["Body"])["paymentId"] for message in received]
    return seen


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    waiting = sub.add_parser("wait")
    waiting.add_argument("--timeout", type=float, default=60)
    waiting.add_argument("arns", nargs="+")
    sub.add_parser("history").add_argument("arn")
    item = sub.add_parser("get-item")
    for name in ("table", "pk", "sk"):
        item.add_argument(name)
    obj = sub.add_parser("get-object")
    obj.add_argument("bucket")
    obj.add_argument("key")
    failing = sub.add_parser("nack")
    failing.add_argument("--times", type=int, required=True)
    failing.add_argument("queue_url")
    args = parser.parse_args()
    if args.command == "get-object":
        sys.stdout.buffer.write(boto3.client("s3").get_object(Bucket=args.bucket, Key=args.key)["Body"].read())
        return 0
    result = {"wait": lambda: wait(args.arns, args.timeout), "history": lambda: history(args.arn),
              "get-item": lambda: get_item(args.table, args.pk, args.sk),
              "nack": lambda: nack(args.queue_url, args.times)}[args.command]()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
