"""Bench: the embedded local runtime's Step Functions throughput (`make bench` section "local_runtime").

A five-state STANDARD machine (Pass -> Lambda Task -> DynamoDB putItem -> Choice -> Succeed) run by
LocalRuntime (real handler in-process, real moto DynamoDB), N executions started at once, timed from the
first StartExecution until every execution has finished (bounded wait). Side by side: the floor it
builds on -- unpatched moto, in a fresh subprocess that never imports mxflow_local, running the same
machine with Pass states in place of the two tasks.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

EXECUTIONS = 200
WAIT_LIMIT_S = 180.0

TEMPLATE = textwrap.dedent("""\
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Resources:
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
          KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StepFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: code/
          Handler: app.handler
          Runtime: python3.13
          Timeout: 10
      Machine:
        Type: AWS::Serverless::StateMachine
        Properties:
          DefinitionUri: machine.asl.json
          DefinitionSubstitutions:
            FunctionArn: !GetAtt StepFunction.Arn
            TableName: !Ref Table
    """)

HANDLER = "def handler(event, context):\n    return {'n': event['n'], 'doubled': event['n'] * 2}\n"


def machine(with_tasks: bool) -> dict:
    task = {"Type": "Task", "Resource": "${FunctionArn}", "ResultPath": "$.result", "Next": "Write"}
    write = {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "ResultPath": None, "Next": "Check",
             "Parameters": {"TableName": "${TableName}",
                            "Item": {"pk": {"S.$": "$$.Execution.Name"}, "n": {"N.$": "States.Format('{}', $.n)"}}}}
    if not with_tasks:
        task = {"Type": "Pass", "Result": {"n": 1, "doubled": 2}, "ResultPath": "$.result", "Next": "Write"}
        write = {"Type": "Pass", "ResultPath": None, "Next": "Check"}
    return {"StartAt": "Begin", "States": {
        "Begin": {"Type": "Pass", "Next": "Work"},
        "Work": task,
        "Write": write,
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThanEquals": 0, "Next": "Done"}],
                  "Default": "Done"},
        "Done": {"Type": "Succeed"}}}


def drive(sfn, machine_arn: str, count: int) -> dict:
    """Start `count` executions at once, wait for all; throughput and per-execution latency."""
    began = time.perf_counter()
    arns = [sfn.start_execution(stateMachineArn=machine_arn, name=f"bench-{i}", input=json.dumps({"n": i}))["executionArn"]
            for i in range(count)]
    started_s = time.perf_counter() - began
    pending, statuses, latencies = set(arns), {}, []
    deadline = began + WAIT_LIMIT_S
    while pending and time.perf_counter() < deadline:
        for arn in list(pending):
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                pending.discard(arn)
                statuses[described["status"]] = statuses.get(described["status"], 0) + 1
                latencies.append((described["stopDate"] - described["startDate"]).total_seconds() * 1000)
        time.sleep(0.02)
    elapsed = time.perf_counter() - began
    done = count - len(pending)
    return {"executions": count, "finished": done, "statuses": statuses, "seconds": round(elapsed, 3),
            "start_calls_s": round(started_s, 3),
            "executions_per_s": round(done / elapsed, 1) if elapsed else 0.0,
            "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None}


FLOOR_SCRIPT = textwrap.dedent("""\
    import json, sys
    from moto import mock_aws
    sys.path.insert(0, sys.argv[1])
    from bench.local_runtime import drive, machine
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        import boto3
        sfn = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        arn = sfn.create_state_machine(name="floor", definition=json.dumps(machine(False)),
                                       roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
        print(json.dumps(drive(sfn, arn, int(sys.argv[2]))))
    """)


def run_floor(count: int) -> dict:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT, str(root), str(count)],
                          capture_output=True, text=True, timeout=WAIT_LIMIT_S + 60)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> dict:
    from mxflow_local.runtime import LocalRuntime

    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir)
        (root / "code").mkdir()
        (root / "code" / "app.py").write_text(HANDLER)
        (root / "template.yaml").write_text(TEMPLATE)
        (root / "machine.asl.json").write_text(json.dumps(machine(True), indent=2))
        began = time.perf_counter()
        runtime = LocalRuntime(root / "template.yaml", scheduler=False).start()
        start_s = time.perf_counter() - began
        try:
            measured = drive(runtime.client("stepfunctions"), runtime.physical("Machine"), EXECUTIONS)
            written = runtime.client("dynamodb").scan(TableName=runtime.physical("Table"), Select="COUNT")["Count"]
        finally:
            runtime.stop()
    floor = run_floor(EXECUTIONS)
    return {"local_runtime": {
        "executions": EXECUTIONS,
        "executions_per_s": measured["executions_per_s"],
        "moto_floor_executions_per_s": floor.get("executions_per_s"),
        "succeeded": measured["statuses"].get("SUCCEEDED", 0),
        "items_written": written,
        "latency_ms_p50": measured["latency_ms_p50"],
        "runtime_start_s": round(start_s, 3),
        "machine": "Pass -> Lambda Task -> DynamoDB putItem -> Choice -> Succeed; floor: Pass in place of both tasks",
        "detail": {"runtime": measured, "moto_floor": floor},
    }}


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    print()
