"""Canary: fails loudly when the moto internals mxflow_local patches change shape.

mxflow_local.lambda_runner and mxflow_local.stepfunctions rest on private parts of moto's Lambda backend and
Step Functions interpreter. moto is pinned; a new version must pass this test before the pin moves."""
from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest

from mxflow_local.stepfunctions import PINNED_MOTO


def test_moto_version_is_the_pinned_one():
    assert version("moto") == PINNED_MOTO, (
        f"moto {version('moto')} installed, mxflow_local was checked against {PINNED_MOTO}: run this canary's "
        "checks, fix the patches, then update PINNED_MOTO and requirements/dev.txt")


def test_lambda_invoke_signature():
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from mxflow_local import lambda_runner

    lambda_runner.install()
    original = lambda_runner._ORIGINAL_INVOKE
    assert list(inspect.signature(original).parameters) == [
        "self", "function_name", "qualifier", "body", "headers", "response_headers"]
    assert LambdaSimpleBackend.invoke is lambda_runner._patched_invoke


def test_os_environ_is_the_patchable_class():
    import os

    from mxflow_local import lambda_runner

    lambda_runner.install_environ()
    assert isinstance(os.environ, os._Environ) and hasattr(os.environ, "_data")


def test_step_functions_internals_used_by_the_patches():
    from moto.stepfunctions.parser.asl.component.common.flow.start_at import StartAt
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
    from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimeoutError
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramRunning
    from moto.stepfunctions.parser.asl.jsonata import jsonata
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    assert "start_at_name" in inspect.signature(StartAt).parameters
    assert {"start_at", "states", "eval"} <= set(dir(Program)) | set(inspect.signature(Program).parameters)
    assert hasattr(StateTask, "_from_error") and hasattr(StateTaskLambda, "_from_error")
    assert issubclass(HeartbeatTimeoutError, TimeoutError)
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, HeartbeatEndpoint
    assert {"setup_heartbeat_endpoint", "get_outcome", "notify"} <= set(dir(CallbackEndpoint))
    assert {"clear_and_wait", "notify"} <= set(dir(HeartbeatEndpoint))
    for name in ("_state_mutex", "_program_state", "event_manager", "states", "event_history_context"):
        assert name in inspect.getsource(Environment.__init__), name
    assert ProgramRunning
    assert hasattr(jsonata, "_eval_jsonata") and hasattr(jsonata, "encode_jsonata_variable_declarations")
    # patch_starting_execution: a registered execution has no status until start(); status reads exec_status
    assert {"self.exec_worker = None", "self.exec_status = None"} <= set(
        line.strip() for line in inspect.getsource(inspect.unwrap(Execution.__init__)).splitlines())
    assert "self.exec_status.value" in inspect.getsource(Execution.status.fget)
    # patch_starting_execution: the callbacks walk _get_executions and read each one's exec_worker.env
    for method in ("send_task_success", "send_task_failure", "send_task_heartbeat"):
        source = inspect.getsource(getattr(StepFunctionsParserBackend, method))
        assert "self._get_executions(" in source and "exec_worker.env" in source, method
    from moto.stepfunctions.parser.asl.utils import boto_client
    assert list(inspect.signature(boto_client.boto_client_for).parameters) == ["region", "service", "state_credentials"]
    assert "_execution_communication" in inspect.getsource(ExecutionWorker.__init__)
    assert {"execution_input", "trace_header"} <= set(inspect.signature(StepFunctionsParserBackend.start_execution).parameters)
    for method in ("describe_execution", "send_task_failure", "start_execution"):
        assert hasattr(StepFunctionResponse, method)
    # patch_retry_token: each attempt passes through _evaluate_with_timeout; the token is made once in
    # _eval_body (before the retry loop) and the wait's endpoint is interrupted when an attempt ends
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.states import ContextObject

    assert "self._evaluate_with_timeout(env)" in inspect.getsource(ExecutionState._eval_state)
    assert "update_task_token()" in inspect.getsource(StateTaskServiceCallback._eval_body)
    assert "interrupt_all()" in inspect.getsource(StateTaskServiceCallback._eval_integration_pattern)
    assert hasattr(ContextObject, "update_task_token") and hasattr(StateTaskServiceCallback, "_is_integration_pattern")


def test_dynamodb_handlers_serialised_by_the_local_lock():
    from moto.dynamodb.responses import DynamoHandler

    from mxflow_local import dynamodb

    for name in dynamodb.HANDLER_OPERATIONS:
        assert callable(getattr(DynamoHandler, name, None)), name
    assert "dynamo_to_dict" in inspect.getsource(DynamoHandler.get_item) or \
        "DynamoResult" in inspect.getsource(DynamoHandler.get_item)


def test_internals_of_the_express_casing_and_clock_patches():
    from moto.stepfunctions.models import StateMachineInstance
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    # patch_express: the type is kept apart from sm_type; termination reports through the worker communication
    assert "self.sm_type = " in inspect.getsource(StateMachineInstance.__init__)
    assert "def terminated" in inspect.getsource(BaseExecutionWorkerCommunication)
    assert {"sm_type"} <= set(inspect.signature(StepFunctionsParserBackend.create_state_machine).parameters)
    # patch_sdk_casing: moto's own conversion helpers it calls
    assert hasattr(StateTaskService, "_to_boto_request") and hasattr(StateTaskService, "_from_boto_response")
    assert {"_get_boto_service_name", "_get_boto_service_action"} <= set(dir(StateTaskService))
    # patch_retry_clock: the backoff sleeps through the module's `time`
    assert "time.sleep(interval_seconds)" in inspect.getsource(retrier_decl.RetrierDecl._eval_body)
    # mxflow_local.clock: moto's SQS stamps messages with this module-level function
    import moto.sqs.models as sqs_models

    assert "unix_time_millis" in inspect.getsource(sqs_models.Queue.add_message) or \
        "sent_timestamp" in inspect.getsource(sqs_models.Queue.add_message)
    assert "unix_time_millis()" in inspect.getsource(sqs_models.Message.mark_sent)


def test_moto_still_lacks_what_we_add():
    """When moto implements a gap itself, the patch should go: this tells us."""
    import moto.stepfunctions.parser.asl.jsonata.jsonata as module
    from moto.stepfunctions.models import StepFunctionBackend

    source = inspect.getsource(StepFunctionBackend)
    assert "def redrive_execution" not in source or "NotImplementedError" in source
    from moto.stepfunctions.models import StateMachineInstance
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    assert 'self.sm_type = "STANDARD"' in inspect.getsource(StateMachineInstance.__init__)  # patch_express
    stub = inspect.getsource(StateTaskService._normalise_parameters).rstrip()
    assert stub.endswith("pass")  # patch_sdk_casing
    assert module.eval_jsonata_expression.__module__ in (module.__name__, "mxflow_local.stepfunctions")
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState

    assert "task_token" not in inspect.getsource(ExecutionState._eval_state)  # patch_retry_token: no new token per retry


def test_internals_of_the_speed_patches():
    from moto.core.responses import ActionResult
    from moto.stepfunctions.parser import utils
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.utils import json_path
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    from mxflow_local import stepfunctions

    stepfunctions.install()
    # patch_program_cache: the worker parses its program in this method, per execution, and a component's
    # heap key is made lazily from a property
    assert "self._get_evaluation_entrypoint()" in inspect.getsource(ExecutionWorker._execution_logic)
    assert isinstance(inspect.getattr_static(EvalComponent, "heap_key"), property)
    # patch_jsonpath_cache: both modules call a module-level `parse` (now cached)
    for module in (json_path, result_path):
        assert hasattr(module.parse, "cache_info"), module.__name__
        assert "parse(" in inspect.getsource(module)
    # patch_thread_list: TMP_THREADS is only appended to, never read back
    assert isinstance(utils.TMP_THREADS, stepfunctions._NotKept)
    # patch_program_thread: Program.eval's own thread only runs EvalComponent.eval and is joined with the
    # execution's timeout (is_alive after the join: timed out), and the worker calls it then ends the execution
    from moto.stepfunctions.parser.asl.component.program.program import Program

    original = inspect.getsource(Program.eval._mxflow_original)
    assert "threading.Thread(target=super().eval" in original and "join(timeout=timeout)" in original
    assert "env.set_timed_out()" in original
    logic = inspect.getsource(ExecutionWorker._execution_logic)
    assert logic.index("program.eval(self.env)") < logic.index("self._execution_communication.terminated()")
    # patch_execution_names: moto's check walks the executions, and the first of the name decides
    from moto.stepfunctions.models import StateMachine

    walk = inspect.getsource(StateMachine._handle_name_input_idempotency._mxflow_original)
    assert "for execution in self.executions:" in walk and "if execution.name == name:" in walk
    assert 'execution.status == "RUNNING"' in walk and "raise ExecutionAlreadyExists(" in walk
    # mxflow_local.dynamodb.patch_json_responses wraps this method
    assert "context" in inspect.signature(getattr(ActionResult.execute_result, "__wrapped__",
                                                  ActionResult.execute_result)).parameters


def test_dynamodb_json_responses_and_requests_equal_motos_own():
    """patch_json_responses answers item operations with json.dumps of the result: the same document moto's
    own serialiser makes of it (nested maps and lists, numbers, binary, consumed capacity); and
    patch_json_requests gives the handler the same parameters as moto's shape parser (blobs decoded)."""
    import json

    import boto3
    from moto import mock_aws
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler

    from mxflow_local import dynamodb

    dynamodb.install()
    captured: list = []
    requests: list = []
    patched = ActionResult.execute_result
    patched_parse = DynamoHandler.parse_parameters

    def capture(self, context):
        answer = patched(self, context)
        if dynamodb.json_response(context, self.result) is not None:
            captured.append((context.operation_model.name,
                             json.loads(answer[2]) == json.loads(patched.__wrapped__(self, context)[2])))
        return answer

    def capture_parse(self, request):
        fast = dynamodb.json_request(self, request)
        patched_parse.__wrapped__(self, request)
        if fast is not None:
            requests.append((self._get_action(), fast == self.params))

    ActionResult.execute_result = capture
    DynamoHandler.parse_parameters = capture_parse
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
            item = {"pk": {"S": "p1"}, "n": {"N": "12.50"}, "b": {"B": b"\x00\xffz"}, "ok": {"BOOL": True},
                    "h": {"L": [{"M": {"s": {"S": "RCVD"}, "at": {"S": "2026-12-01T00:00:00Z"}}}, {"NULL": True}]},
                    "ss": {"SS": ["a", "b"]}}
            client.put_item(TableName="t", Item=item, ReturnConsumedCapacity="TOTAL")
            got = client.get_item(TableName="t", Key={"pk": {"S": "p1"}}, ReturnConsumedCapacity="TOTAL")
            client.update_item(TableName="t", Key={"pk": {"S": "p1"}}, UpdateExpression="SET n = :n",
                               ExpressionAttributeValues={":n": {"N": "3"}}, ReturnValues="ALL_NEW")
            client.query(TableName="t", KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": "p1"}}, Limit=1,
                         ExclusiveStartKey={"pk": {"S": "p0"}})
            nested = {"pk": {"S": "p2"}, "m": {"M": {"B": {"B": b"\x01"}, "BS": {"BS": [b"\x02", b"\x03"]},
                                                     "l": {"L": [{"B": b"\x04"}, {"M": {"x": {"B": b"\x05"}}}]}}}}
            client.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": nested}}]})
            client.transact_write_items(TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "p3"}, "bs": {"BS": [b"\x06"]}},
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Update": {"TableName": "t", "Key": {"pk": {"S": "p1"}}, "UpdateExpression": "SET b = :b",
                            "ExpressionAttributeValues": {":b": {"B": b"\x07"}}}}])
            read = client.get_item(TableName="t", Key={"pk": {"S": "p2"}})["Item"]
            # GetRecords: the stream's records of a put, an update and a delete (keys, images, binary, timestamps)
            arn = client.create_table(
                TableName="s", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )["TableDescription"]["LatestStreamArn"]
            client.put_item(TableName="s", Item={**item, "m": nested["m"]})
            client.update_item(TableName="s", Key={"pk": {"S": "p1"}}, UpdateExpression="SET n = :n",
                               ExpressionAttributeValues={":n": {"N": "4"}})
            client.delete_item(TableName="s", Key={"pk": {"S": "p1"}})
            streams = boto3.client("dynamodbstreams", region_name="us-east-1")
            shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records = streams.get_records(ShardIterator=iterator, Limit=2)
            records = records["Records"] + streams.get_records(ShardIterator=records["NextShardIterator"])["Records"]
    finally:
        ActionResult.execute_result = patched
        DynamoHandler.parse_parameters = patched_parse
    assert got["Item"]["b"]["B"] == b"\x00\xffz" and got["Item"]["h"]["L"][0]["M"]["s"]["S"] == "RCVD"
    assert read["m"]["M"]["l"]["L"][1]["M"]["x"]["B"] == b"\x05" and read["m"]["M"]["B"]["B"] == b"\x01"
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert records[0]["dynamodb"]["NewImage"]["m"]["M"]["l"]["L"][1]["M"]["x"]["B"] == b"\x05"
    assert records[0]["dynamodb"]["ApproximateCreationDateTime"].year >= 2024
    assert {"GetItem", "Query", "GetRecords"} <= {name for name, _ in captured} and all(
        same for _, same in captured), captured
    operations = {operation for operation, _ in requests}
    assert {"PutItem", "GetItem", "UpdateItem", "Query", "BatchWriteItem", "TransactWriteItems"} <= operations
    assert all(same for _, same in requests), requests


def test_dynamodb_projection_equals_motos_own():
    """patch_projection converts only the attribute a path starts with: every projection (top-level names,
    nested maps, list items, paths that overlap, that miss, NULL values) gives the item moto's own gives."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from mxflow_local import dynamodb

    dynamodb.install()
    assert Item.project is dynamodb._project
    original = Item.project.__wrapped__
    attrs = {"pk": {"S": "p1"}, "sk": {"S": "PAYMENT"}, "status": {"S": "PDNG"}, "n": {"N": "12.50"},
             "b": {"B": "AP96"}, "none": {"NULL": True}, "ss": {"SS": ["a", "b"]},
             "history": {"L": [{"M": {"status": {"S": "RCVD"}, "time": {"S": "t0"}, "x": {"NULL": True}}},
                               {"M": {"status": {"S": "PDNG"}, "time": {"S": "t1"}}}]},
             "release": {"M": {"sentAt": {"S": "t2"}, "deep": {"M": {"a": {"N": "1"}, "z": {"NULL": True}}}}}}
    item = Item(hash_key=DynamoType({"S": "p1"}), range_key=DynamoType({"S": "PAYMENT"}), attrs=attrs)
    for paths in (["pk", "sk", "status"], ["history"], ["release.sentAt"], ["history[1].status", "history[0]"],
                  ["release.deep.a", "release.sentAt", "release"], ["release", "release.deep.z"], ["missing", "x.y"],
                  ["history[5]", "n", "b", "none", "ss"], ["release.missing.a", "status"],
                  ["pk", "status", "history", "clientId", "suspendedIn", "release.sentAt"]):
        expressions = [path.split(".") for path in paths]
        assert dynamodb._project(item, expressions).to_json() == original(item, expressions).to_json(), paths
    assert item.to_json()["Attributes"] == attrs   # the item itself is left as it was

    class Unread(DynamoType):   # an attribute no path names is not converted
        def to_regular_json(self):
            raise AssertionError("an attribute no path names was converted")

    item.attrs["history"] = Unread(attrs["history"])
    assert dynamodb._project(item, [["pk"], ["sk"], ["release", "sentAt"]]).to_json()["Attributes"] == {
        "pk": {"S": "p1"}, "sk": {"S": "PAYMENT"}, "release": {"M": {"sentAt": {"S": "t2"}}}}


def test_dynamodb_index_query_equals_motos_own():
    """patch_index_query runs moto's Query on the items whose index hash key matches and sorts them by cast
    keys: every Query of an index (KEYS_ONLY, INCLUDE, ALL, no range key, a local index; string and number
    keys, ties on the index's range key, sparse items; forward and back, Limit, every page by
    ExclusiveStartKey, the 1 MB page, range conditions, filters, projections, COUNT, consumed capacity)
    answers what moto's own answers; and moto still reads the items through the methods it replaces."""
    import boto3
    from moto import mock_aws
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    from mxflow_local import dynamodb

    dynamodb.install()
    patched, patched_size = Table.query, DynamoType.size
    assert patched._mxflow_index and Table.all_items._mxflow_index and Table.sorted_items._mxflow_index
    assert patched_size is dynamodb._size
    source = inspect.getsource(patched.__wrapped__)
    assert "for item in self.all_items():" in source and "self.sorted_items(" in source
    assert "result.size()" in source

    def key(name, kind="S"):
        return {"AttributeName": name, "AttributeType": kind}

    def index(name, hash_name, range_name=None, projection=None):
        schema = [{"AttributeName": hash_name, "KeyType": "HASH"}]
        schema += [{"AttributeName": range_name, "KeyType": "RANGE"}] if range_name else []
        return {"IndexName": name, "KeySchema": schema, "Projection": projection or {"ProjectionType": "KEYS_ONLY"}}

    queries = []
    for name, condition, values in (
            ("Keys", "g = :g", {":g": {"S": "a"}}), ("Keys", "g = :g AND r BETWEEN :lo AND :hi",
                                                    {":g": {"S": "b"}, ":lo": {"S": "r1"}, ":hi": {"S": "r3"}}),
            ("Keys", "g = :g AND begins_with(r, :p)", {":g": {"S": "a"}, ":p": {"S": "r2"}}),
            ("Numbers", "g = :g", {":g": {"S": "a"}}), ("Numbers", "g = :g AND n > :n", {":g": {"S": "b"}, ":n": {"N": "2"}}),
            ("HashOnly", "g = :g", {":g": {"S": "b"}}), ("Local", "pk = :p", {":p": {"S": "p1"}}),
            ("Keys", "g = :g", {":g": {"S": "none"}})):
        for forward in (True, False):
            for limit in (None, 1, 3, 7):
                queries.append(dict(IndexName=name, KeyConditionExpression=condition, ExpressionAttributeValues=values,
                                    ScanIndexForward=forward, **({"Limit": limit} if limit else {})))
    base = dict(IndexName="Keys", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": "a"}})
    queries += [{**base, "Select": "COUNT"}, {**base, "ReturnConsumedCapacity": "INDEXES", "Limit": 4},
                {**base, "IndexName": "Numbers", "ProjectionExpression": "pk, n, x"},
                {**base, "IndexName": "HashOnly", "FilterExpression": "x = :x",
                 "ExpressionAttributeValues": {":g": {"S": "a"}, ":x": {"S": "x1"}}, "Limit": 5},
                {**base, "IndexName": "HashOnly", "ProjectionExpression": "pk, h[1].s, big"}]

    def answers(client):
        pages = []
        for query in queries:
            kwargs = {"TableName": "canary-index", **query}
            for _ in range(100):
                page = client.query(**kwargs)
                page.pop("ResponseMetadata")
                pages.append((query.get("Limit"), page))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return pages

    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-3")
        client.create_table(
            TableName="canary-index", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[key("pk"), key("sk"), key("g"), key("r"), key("n", "N")],
            GlobalSecondaryIndexes=[index("Keys", "g", "r"),
                                    index("Numbers", "g", "n", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]}),
                                    index("HashOnly", "g", projection={"ProjectionType": "ALL"})],
            LocalSecondaryIndexes=[index("Local", "pk", "r")])
        numbers = ["10", "9", "-1", "1.5", "2", "2.50", "100", "0"]
        for i in range(48):
            item = {"pk": {"S": f"p{i % 5}"}, "sk": {"S": f"s{47 - i:02d}"}, "x": {"S": f"x{i % 3}"},
                    "h": {"L": [{"M": {"s": {"S": "RCVD"}, "n": {"N": str(i)}}}, {"M": {"s": {"S": "PDNG"}}}]}}
            if i % 7:   # sparse: some items are in no index
                item["g"] = {"S": "ab"[i % 2]}
            if i % 4:
                item["r"] = {"S": f"r{i % 4}"}   # ties: ordered by the table's keys
            if i % 3:
                item["n"] = {"N": numbers[i % len(numbers)]}
            if i % 5 == 1:
                item["big"] = {"S": "z" * 300_000}   # a few of these fill a 1 MB page
            client.put_item(TableName="canary-index", Item=item)
        all_items, reads = Table.all_items, []

        def counted(self):   # moto's query reads the items through all_items, in the patch's query
            reads.append(dynamodb._QUERY.table is self)
            return all_items(self)

        Table.all_items = counted
        try:
            mine = answers(client)
        finally:
            Table.all_items = all_items
        assert reads and all(reads)
        Table.query, DynamoType.size = patched.__wrapped__, patched_size.__wrapped__
        try:
            theirs = answers(client)
        finally:
            Table.query, DynamoType.size = patched, patched_size
    assert len(mine) > len(queries) and any("LastEvaluatedKey" in page for limit, page in mine if limit is None)
    assert mine == theirs


def test_dynamodb_sizes_and_mixed_key_types_equal_motos_own():
    """_size sums what moto's DynamoType.size sums; and an index whose key has two types among the items
    (not something the API lets in: written behind its back) is sorted by moto's own comparisons."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    from mxflow_local import dynamodb

    dynamodb.install()
    for value in ({"S": "é€x"}, {"N": "-12.50"}, {"B": b"\x00\xff"}, {"B": "AP8="}, {"BOOL": False}, {"NULL": True},
                  {"SS": ["a", "bé"]}, {"NS": ["1", "2.5"]}, {"BS": [b"\x01"]}, {"L": []}, {"M": {}},
                  {"M": {"ké": {"L": [{"M": {"a": {"N": "1"}, "b": {"SS": ["x"]}}}, {"NULL": True}, {"S": ""}]}}}):
        assert dynamodb._size(DynamoType(value)) == DynamoType.size.__wrapped__(DynamoType(value)), value

    def item(pk, r):
        return Item(hash_key=DynamoType({"S": pk}), range_key=None, attrs={"pk": {"S": pk}, "g": {"S": "a"}, "r": r})

    table = Table("t", account_id="123456789012", region="us-east-1",
                  schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                  attr=[{"AttributeName": "pk", "AttributeType": "S"}],
                  global_indexes=[{"IndexName": "G", "Projection": {"ProjectionType": "ALL"},
                                   "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                                 {"AttributeName": "r", "KeyType": "RANGE"}]}])
    for pk, r in (("p3", {"S": "1"}), ("p1", {"B": "1"}), ("p2", {"S": "0"}), ("p0", {"B": "0"})):
        table.items[DynamoType({"S": pk})] = item(pk, r)
    conditions = [("g", DynamoType({"S": "a"}))]
    for forward in (True, False):
        args = (None, None, [], None, None, forward, None, "G")
        mine = [i.to_json() for i in Table.query(table, *args, hash_key_conditions=conditions)[0]]
        theirs = [i.to_json() for i in Table.query.__wrapped__(table, *args, hash_key_conditions=conditions)[0]]
        assert mine == theirs and len(mine) == 4
    table.items[DynamoType({"S": "p4"})] = item("p4", {"N": "1"})   # a number among strings: moto's TypeError
    for query in (Table.query, Table.query.__wrapped__):
        with pytest.raises(TypeError):
            query(table, None, None, [], None, None, True, None, "G", hash_key_conditions=conditions)


def _moto_own_update_expressions():
    """A context in which moto parses, copies and traverses UpdateExpressions its own way (the originals of
    mxflow_local.dynamodb.patch_update_expressions)."""
    import contextlib
    import copy

    from moto.dynamodb.parsing import ast_nodes, expressions, validators

    parser, traverser, counter = expressions.UpdateExpressionParser, ast_nodes.DepthFirstTraverser, validators.ActionCountValidator
    patched = (parser.make, validators.deepcopy, traverser.nodes_to_be_processed, traverser.process, counter.traverse)

    @contextlib.contextmanager
    def own():
        parser.make = classmethod(parser.make.__wrapped__)
        validators.deepcopy = copy.deepcopy
        traverser.nodes_to_be_processed = traverser.nodes_to_be_processed.__wrapped__
        traverser.process = traverser.process.__wrapped__
        counter.traverse = counter.traverse.__wrapped__
        try:
            yield
        finally:
            parser.make, validators.deepcopy = classmethod(patched[0].__func__), patched[1]
            traverser.nodes_to_be_processed, traverser.process, counter.traverse = patched[2:]

    return own()


def test_dynamodb_update_expressions_equal_motos_own():
    """patch_update_expressions keeps one parse per UpdateExpression, copies its tree as deepcopy does,
    builds each traversal's processing map once and counts clauses in one walk: every UpdateItem (SET,
    nested paths, list_append, if_not_exists, arithmetic, REMOVE, ADD, DELETE, every ReturnValues, a failed
    condition, the errors of an invalid expression, of a repeated clause, of overlapping paths, of a key, of
    a missing value or path, of types) and a
    TransactWriteItems answer what moto's own answer, leave the same items and the same stream; and the
    moto code it relies on still has the shape it had."""
    import ast
    import copy
    import re
    import textwrap

    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws
    from moto.dynamodb import responses
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.parsing import ast_nodes, expressions, validators

    from mxflow_local import dynamodb

    dynamodb.install()
    parser = expressions.UpdateExpressionParser
    assert parser.make._mxflow_cached and validators.deepcopy is dynamodb._deepcopy
    # the parsed tree is never changed: the handler reads it, the validator validates a deepcopy of it
    assert "self.node_to_validate = deepcopy(expression)" in inspect.getsource(validators.Validator.__init__)
    handler = inspect.getsource(responses.DynamoHandler)
    uses = [line.strip() for line in handler.splitlines() if "update_expression_ast" in line or "Parser.make(" in line]
    assert len(uses) == 5 and all(use in ("update_expression_ast = UpdateExpressionParser.make(update_expression)",
                                          "attr_name_clauses = update_expression_ast.find_clauses(",
                                          "attr_value_clauses = update_expression_ast.find_clauses(") for use in uses)
    backend = inspect.getsource(DynamoDBBackend.update_item)
    assert backend.count("update_expression_ast") == 3 and backend.count("UpdateExpressionValidator(\n") == 2
    assert all(line.strip() == "update_expression_ast," for line in backend.splitlines()
               if "update_expression_ast" in line and "make(" not in line)
    # each traverser's map is a dict literal of its own methods (the same on every call)
    def subclasses(cls):
        return [c for sub in cls.__subclasses__() for c in [sub] + subclasses(sub)]

    traversers = subclasses(ast_nodes.DepthFirstTraverser)
    assert len(traversers) >= 10 and all("_processing_map" in vars(c) for c in traversers)
    for cls in traversers:
        body = ast.parse(textwrap.dedent(inspect.getsource(cls._processing_map))).body[0].body
        assert len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Dict), cls
        assert all(isinstance(v, ast.Attribute) and v.value.id == "self" for v in body[0].value.values), cls

    def shape(node, parent=None):   # a tree's classes, leaves and parent links
        assert node.parent is parent
        return (type(node).__name__, node.type, [shape(c, node) if isinstance(c, ast_nodes.Node) else c
                                                 for c in node.children or []])

    for text in ("SET #a = :v, #b.#c[2] = list_append(if_not_exists(#l, :e), :l) REMOVE #r[1], #s ADD #n :one DELETE #t :set",
                 "SET a = b + :n, c = :v - d", "REMOVE x.y[0].z"):
        tree = parser.make.__wrapped__(parser, text)
        mine, theirs = dynamodb._deepcopy(tree), copy.deepcopy(tree)
        assert shape(mine) == shape(theirs) == shape(tree) and mine is not tree
    assert parser.make(text) is parser.make(text)   # one parse per expression
    # the clause count: the same outcome as moto's traversal (which kind is named when several repeat)
    counter = validators.ActionCountValidator
    assert counter.traverse is dynamodb._count_actions and counter.traverse.__wrapped__ is ast_nodes.DepthFirstTraverser.traverse
    assert "def find_clauses" not in inspect.getsource(validators) and ast_nodes.Node.find_clauses.__qualname__ == "Node.find_clauses"
    outcomes = []
    for text in ("SET a = :v", "SET a = :v REMOVE b SET c = :v", "REMOVE a ADD n :one REMOVE b ADD m :one",
                 "SET a = :v, b = list_append(if_not_exists(b, :e), :e) REMOVE c ADD d :n DELETE e :s",
                 "ADD a :v SET b = :v ADD c :v", "REMOVE a, b REMOVE c SET d = :v SET e = :v",
                 "DELETE a :s DELETE b :s", "SET a = b + :v - c, d[1].e = :v REMOVE f[2] ADD g :v"):
        for count in (dynamodb._count_actions, counter.traverse.__wrapped__):
            tree = parser.make.__wrapped__(parser, text)
            try:
                outcome = count(counter(), tree) is tree
            except Exception as error:   # noqa: BLE001 - moto's own error is the outcome compared
                outcome = (type(error).__name__, str(error))
            outcomes.append(outcome)
    assert outcomes[0::2] == outcomes[1::2] and outcomes.count(True) == 2 * 4
    named = {re.search(r"The \W*([A-Z]+)\W* section", o[1]).group(1) for o in outcomes if o is not True}
    assert named == {"SET", "ADD"}   # moto names the kind of the deepest repeat (DELETE is not counted)

    history = {"L": [{"M": {"status": {"S": "RCVD"}, "time": {"S": "t0"}}}]}
    item = {"pk": {"S": "p1"}, "sk": {"S": "PAYMENT"}, "status": {"S": "RCVD"}, "version": {"N": "1"},
            "history": history, "tags": {"SS": ["a", "b"]}, "n": {"N": "5"},
            "messages": {"M": {"inbound": {"M": {"z": {"B": b"\x00\xffraw"}}}}}}
    names = {"#s": "status", "#v": "version", "#h": "history", "#m": "messages", "#o": "outbound", "#p": "pacs.002"}
    event = {"L": [{"M": {"status": {"S": "ACSP"}, "time": {"S": "t1"}}}]}
    payment_update = dict(
        UpdateExpression="SET #s = :s, #v = :v, #h = list_append(#h, :e), #m.#o = :b, #m.#p = :b REMOVE #x",
        ConditionExpression="(#s IN (:was)) AND (#v = :one)", ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ExpressionAttributeNames={**names, "#x": "tags"},
        ExpressionAttributeValues={":s": {"S": "ACSP"}, ":v": {"N": "2"}, ":e": event, ":b": {"M": {"z": {"B": b"\x01"}}},
                                   ":was": {"S": "RCVD"}, ":one": {"N": "1"}})
    updates = [
        payment_update, payment_update,   # the second fails its condition: ALL_OLD
        dict(UpdateExpression="SET #n = #n + :one, #new = if_not_exists(#new, :zero) ADD tags :set, cnt :one",
             ExpressionAttributeNames={"#n": "n", "#new": "fresh"}, ReturnValues="UPDATED_NEW",
             ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}, ":set": {"SS": ["c"]}}),
        dict(UpdateExpression="DELETE tags :set SET #h[0].#s = :s REMOVE #h[1]", ReturnValues="ALL_OLD",
             ExpressionAttributeNames={"#h": "history", "#s": "status"},
             ExpressionAttributeValues={":set": {"SS": ["a"]}, ":s": {"S": "X"}}),
        dict(UpdateExpression="SET l3 = list_append(:e, l3)", ExpressionAttributeValues={":e": event}),   # moto asserts
        dict(UpdateExpression="SET l2 = list_append(if_not_exists(l2, :empty), :e), messages.k = :s", ReturnValues="UPDATED_OLD",
             ExpressionAttributeValues={":empty": {"L": []}, ":e": event, ":s": {"S": "v"}}),
        dict(UpdateExpression="SET l2 = list_append(:e, l2)", ReturnValues="ALL_NEW", ExpressionAttributeValues={":e": event}),
        dict(UpdateExpression="SET a = :v, a.b = :v", ExpressionAttributeValues={":v": {"S": "x"}}),   # overlapping
        dict(UpdateExpression="SET sk = :v", ExpressionAttributeValues={":v": {"S": "x"}}),           # a key
        dict(UpdateExpression="SET a = :missing", ExpressionAttributeValues={":v": {"S": "x"}}),
        dict(UpdateExpression="SET a = list_append(nothing, :e)", ExpressionAttributeValues={":e": event}),
        dict(UpdateExpression="SET n = n + :s", ExpressionAttributeValues={":s": {"S": "x"}}),      # types
        dict(UpdateExpression="SET = :v", ExpressionAttributeValues={":v": {"S": "x"}}),            # syntax
        dict(UpdateExpression="SET nope.deeper = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
        dict(UpdateExpression="SET a = :v REMOVE b SET c = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
        dict(UpdateExpression="REMOVE a ADD n :one REMOVE b", ExpressionAttributeValues={":one": {"N": "1"}}),
        dict(UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
             ExpressionAttributeValues={":s": {"S": "ACSC"}}, ReturnValues="ALL_NEW"),
    ]
    key = {"pk": {"S": "p1"}, "sk": {"S": "PAYMENT"}}

    def outcomes(region):
        client = boto3.client("dynamodb", region_name=region)
        client.create_table(
            TableName="canary-update", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        client.put_item(TableName="canary-update", Item=item)
        answers = []
        for update in updates + [{**payment_update, "ConditionExpression": "attribute_not_exists(#s)"}]:
            try:
                answer = client.update_item(TableName="canary-update", Key=key, **update)
                answer.pop("ResponseMetadata")
            except ClientError as error:
                answer = (error.response["Error"], error.response.get("Item"))
            except AssertionError as error:   # moto's own, on a list_append of a missing path
                answer = (type(error).__name__, str(error))
            answers.append(answer)
        try:
            client.transact_write_items(TransactItems=[
                {"Update": {"TableName": "canary-update", "Key": key, **{k: v for k, v in payment_update.items()
                                                                         if k != "ReturnValuesOnConditionCheckFailure"},
                            "ConditionExpression": "#v = :v"}},
                {"Update": {"TableName": "canary-update", "Key": {**key, "sk": {"S": "OTHER"}},
                            "UpdateExpression": "SET #h = list_append(if_not_exists(#h, :e), :e)",
                            "ExpressionAttributeNames": {"#h": "history"}, "ExpressionAttributeValues": {":e": event}}}])
        except ClientError as error:
            answers.append(error.response["Error"])
        items = client.scan(TableName="canary-update")["Items"]
        stream = boto3.client("dynamodbstreams", region_name=region)
        arn = client.describe_table(TableName="canary-update")["Table"]["LatestStreamArn"]
        shard = stream.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = stream.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        records = [(r["eventName"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage"))
                   for r in stream.get_records(ShardIterator=iterator["ShardIterator"])["Records"]]
        return answers, items, records

    with mock_aws():
        parse = parser.make.__wrapped__
        mine = outcomes("eu-south-1")
        with _moto_own_update_expressions():
            assert parser.make.__func__ is parse and validators.deepcopy is copy.deepcopy
            theirs = outcomes("eu-south-2")
    assert mine == theirs
    answers, items, records = mine
    assert sum(isinstance(a, tuple) for a in answers) >= 8 and len(items) == 2 and len(records) >= 6
    assert answers[1][1] is not None and answers[1][0]["Code"] == "ConditionalCheckFailedException"


def test_call_plumbing_equals_botocore_and_motos_own():
    """mxflow_local.calls: the `in` test of moto's method names answers what the list of inspect.getmembers
    answers, for every response class of moto and every name it has (and a few it has not); the user agent
    kept is the one botocore writes."""
    import boto3
    from botocore import useragent
    from moto.core import responses, utils
    from moto.core.responses import BaseResponse

    from mxflow_local import calls

    calls.install()
    assert responses.method_names_from_class is calls._method_names
    assert calls._method_names.__wrapped__ is utils.method_names_from_class
    source = inspect.getsource(BaseResponse.call_action)
    uses = [line.strip() for line in source.splitlines() if "method_names" in line]
    assert uses == ["method_names = method_names_from_class(self.__class__)", "if action in method_names:"]
    assert "inspect.getmembers(clazz, predicate=predicate)" in inspect.getsource(utils.method_names_from_class)

    def subclasses(cls):
        return [c for sub in cls.__subclasses__() for c in [sub] + subclasses(sub)]

    import importlib

    for service in ("dynamodb", "dynamodbstreams", "s3", "sqs", "sns", "stepfunctions", "awslambda", "kms", "events"):
        importlib.import_module(f"moto.{service}.responses")
    classes = subclasses(BaseResponse)
    assert len(classes) >= 9
    for cls in classes:
        theirs = utils.method_names_from_class(cls)
        mine = calls._method_names(cls)
        for name in set(dir(cls)) | {"not_an_action", "mro", "__class__", "", "get_item", "publish"}:
            assert (name in mine) == (name in theirs), (cls, name)
        assert 0 not in mine and None not in mine

    # the user agent kept per what UserAgentString.to_string reads: its fields, the config's settings, the
    # context's features, the module's hooks; and the same string as botocore's
    import re

    from botocore import context as botocore_context
    from botocore.config import Config

    ua_class = useragent.UserAgentString
    kept, original = ua_class.to_string, ua_class.to_string.__wrapped__
    methods = [original] + [getattr(ua_class, name) for name in dir(ua_class) if name.startswith("_build_")]
    source = "\n".join(inspect.getsource(method) for method in methods)
    config_names = set(re.findall(r"self\._client_config\.(\w+)", source))
    assert config_names == set(calls.USER_AGENT_CONFIG) | {"retries", "_supplied_user_agent"}, config_names
    fields = set(re.findall(r"self\.(_\w+)\b(?!\()", source)) - {"_client_config", "_client_features"}
    assert fields == set(calls.USER_AGENT_FIELDS), fields
    assert "get_context()" in source and "modify_components(components)" in source
    assert "sanitize_user_agent_string_component(" in inspect.getsource(useragent.UserAgentComponent.to_string)
    configs = [None, Config(retries={"mode": "standard"}), Config(user_agent_extra="x/1", user_agent_appid="app"),
               Config(user_agent="legacy/1.0"), Config(retries={"max_attempts": 2}), Config(retries={})]
    for config in configs:
        for session_extra in (None, "extra/2"):
            client = boto3.session.Session(region_name="eu-west-1").client("sqs", config=config)
            agent = client._user_agent_creator
            agent._session_user_agent_extra = session_extra
            for features in ((), ("RETRY_MODE_STANDARD",), ("RETRY_MODE_STANDARD", "S3_TRANSFER", "WAITER")):
                with botocore_context.start_as_current_context():
                    useragent.register_feature_ids(features)
                    assert kept(agent) == kept(agent) == original(agent)
    assert len({kept(agent)} | {original(agent)}) == 1

    # SigV4 by botocore's own signers, the ones botocore maps without awscrt (as in Lambda's runtime)
    from botocore import auth

    branch = inspect.getsource(auth).split("if HAS_CRT:", 1)[1].split("AUTH_TYPE_TO_SIGNATURE_VERSION", 1)[0]
    for name, signer in calls.PYTHON_SIGNERS.items():
        assert f"'{name}': {signer}," in branch
        assert auth.AUTH_TYPE_MAPS[name] is getattr(auth, signer) and not getattr(auth, signer).__module__.startswith("botocore.crt")
    from moto import mock_aws

    with mock_aws():
        signed, client = [], boto3.client("dynamodb", region_name="eu-west-1")
        client.meta.events.register("before-send", lambda request, **_: signed.append(request.headers["Authorization"]))
        client.list_tables()
    assert signed[0].startswith(b"AWS4-HMAC-SHA256 Credential=") and b"/eu-west-1/dynamodb/aws4_request" in signed[0]


def test_powertools_internals_kept_per_environment():
    from aws_lambda_powertools.event_handler import api_gateway
    from aws_lambda_powertools.logging import logger as powertools_logger

    from mxflow_local import lambda_runner

    # _private_powertools_loggers wraps Logger._get_logger; _invocation_local_router_state the two fields
    # that ApiGatewayResolver.resolve assigns on BaseRouter
    assert callable(powertools_logger.Logger._get_logger)
    source = inspect.getsource(api_gateway.ApiGatewayResolver.resolve)
    for name in lambda_runner.ROUTER_FIELDS:
        assert f"BaseRouter.{name} = " in source, name


def _stub_workload(region: str, tag: str) -> list:
    """Calls of the services mxflow uses, through moto's stub: answers and errors, by operation (the names
    end with `tag`: moto's data may be shared with a runtime of another test)."""
    import io

    import boto3
    from botocore.exceptions import ClientError

    ddb, s3, sqs = (boto3.client(s, region_name=region) for s in ("dynamodb", "s3", "sqs"))
    sns, sfn, sts = (boto3.client(s, region_name=region) for s in ("sns", "stepfunctions", "sts"))
    calls = [
        lambda: ddb.create_table(TableName=f"t-{tag}", BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}]),
        lambda: ddb.put_item(TableName=f"t-{tag}", Item={"pk": {"S": "p1"}, "s": {"S": "RCVD"}}),
        lambda: ddb.get_item(TableName=f"t-{tag}", Key={"pk": {"S": "p1"}}),
        lambda: ddb.update_item(TableName=f"t-{tag}", Key={"pk": {"S": "p1"}}, UpdateExpression="SET s = :s",
                                ConditionExpression="s = :was", ExpressionAttributeValues={":s": {"S": "A"}, ":was": {"S": "X"}}),
        lambda: ddb.query(TableName=f"t-{tag}", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p1"}}),
        lambda: s3.create_bucket(Bucket=f"canary-stub-{tag}", CreateBucketConfiguration={"LocationConstraint": region}),
        lambda: s3.put_object(Bucket=f"canary-stub-{tag}", Key="a/b.xml", Body=b"<x/>", Metadata={"my_key": "v", "Other-Key": "w"}),
        lambda: s3.put_object(Bucket=f"canary-stub-{tag}", Key="sp ace/ü€+%2F.txt", Body=b"\x00\xff", ContentType="text/plain"),
        lambda: s3.put_object(Bucket=f"canary-stub-{tag}", Key="/lead//double", Body=b""),
        lambda: s3.put_object(Bucket=f"canary-stub-{tag}", Key="q?x=1&y", Body=io.BytesIO(b"streamed")),   # a stream body
        lambda: s3.get_object(Bucket=f"canary-stub-{tag}", Key="a/b.xml"),
        lambda: s3.get_object(Bucket=f"canary-stub-{tag}", Key="sp ace/ü€+%2F.txt"),
        lambda: s3.head_object(Bucket=f"canary-stub-{tag}", Key="missing"),
        lambda: s3.list_objects_v2(Bucket=f"canary-stub-{tag}", Prefix="sp ace/", MaxKeys=5),
        lambda: s3.copy_object(Bucket=f"canary-stub-{tag}", Key="c.xml", CopySource={"Bucket": f"canary-stub-{tag}", "Key": "a/b.xml"}),
        lambda: s3.delete_object(Bucket=f"canary-stub-{tag}", Key="c.xml"),
        lambda: sqs.create_queue(QueueName=f"canary-stub-{tag}"),
        lambda: sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=f"canary-stub-{tag}")["QueueUrl"], MessageBody="hé",
                                 MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}}),
        lambda: sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName=f"canary-stub-{tag}")["QueueUrl"],
                                    MessageAttributeNames=["All"]),
        lambda: sqs.get_queue_url(QueueName="nope"),
        lambda: sns.publish(TopicArn=sns.create_topic(Name=f"canary-stub-{tag}")["TopicArn"], Message="m",
                            MessageAttributes={"a": {"DataType": "String", "StringValue": "b"}}),
        lambda: sts.get_caller_identity(),
        lambda: sfn.start_execution(stateMachineArn=sfn.create_state_machine(
            name=f"canary-stub-{tag}", roleArn="arn:aws:iam::123456789012:role/r",
            definition='{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}')["stateMachineArn"],
            name="e1", input='{"a": 1}'),
        lambda: sfn.describe_state_machine(stateMachineArn="arn:aws:states:nowhere"),
    ]
    answers = []
    for call in calls:
        try:
            answer = call()
            answer = {k: (v.read() if hasattr(v, "read") else v) for k, v in answer.items()}
        except ClientError as error:
            answer = error.response
        answers.append(answer)
    return answers


def test_stub_plumbing_equals_motos_own():
    """mxflow_local.calls._process_request: moto's BotocoreStubber.process_request with its URL lookups kept.
    The method it replaces is still the one it mirrors, the kept lookups answer what moto's own loop and
    `backend.urls` answer for every request, and the calls answer the same."""
    import datetime
    import re

    from moto import backend_index, mock_aws
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID, base_backend, botocore_stubber
    from moto.moto_api._internal import mock_random

    from mxflow_local import calls

    calls.install()
    stubber = botocore_stubber.BotocoreStubber
    assert stubber.process_request is calls._process_request
    source = inspect.getsource(calls._process_request.__wrapped__)
    for line in ("for service, pattern in backend_index.backend_url_patterns:", "if pattern.match(clean_url):",
                 "if passthrough_service(service):", "if not service_whitelisted(service):",
                 "backend_dict = backends.get_backend(service)", 'if "us-east-1" in backend_dict[DEFAULT_ACCOUNT_ID]:',
                 "for url, method_to_execute in backend.urls.items():", "if re.compile(url).match(clean_url):",
                 "normalized_request = normalize_request(request)", "recorder._record_request(normalized_request)",
                 'return 404, {}, "Not yet implemented"'):
        assert line in source, line
    # _routes' key: what BaseBackend.urls reads; only S3 has its own url module (reloaded: custom endpoints)
    urls = inspect.getsource(base_backend.BaseBackend.urls.fget)
    assert "self.url_bases" in urls and "self._url_module.url_paths" in urls and "enable_iso_regions()" in urls
    import moto.s3.urls

    s3_urls = inspect.getsource(moto.s3.urls)
    assert re.findall(r"settings\.\w+", s3_urls) == ["settings.get_s3_custom_endpoints"]

    checked: list = []

    def compare(self, request):   # the kept lookups of each call, then the call through the patched method
        for service in calls._services.__wrapped__(request.url.split("?")[0]):
            backend = get_backend(service)[DEFAULT_ACCOUNT_ID]
            backend = backend["us-east-1"] if "us-east-1" in backend else backend["aws"]
            assert [(p.pattern, h) for p, h in calls._routes(backend)] == list(backend.urls.items())
        checked.append(request.url)
        return calls._process_request(self, request)

    def outcomes(process, tag):
        stubber.process_request = process
        try:
            with mock_aws():
                return _stub_workload("eu-south-1", tag)
        finally:
            stubber.process_request = calls._process_request

    # times, headers made of them (a checksum of a body with a time) and random ids differ run to run
    varying = {"date", "last-modified", "x-amz-crc32", "RequestId", "x-amzn-requestid", "x-amz-request-id",
               "x-amz-id-2", "HostId", "MessageId", "ReceiptHandle"}

    def plain(value, tag):
        if isinstance(value, dict):
            return {k.replace(tag, "TAG"): plain(v, tag) for k, v in value.items() if k not in varying}
        if isinstance(value, list):
            return [plain(v, tag) for v in value]
        if isinstance(value, (str, bytes)):
            return value.replace(tag, "TAG") if isinstance(value, str) else value.replace(tag.encode(), b"TAG")
        return type(value).__name__ if isinstance(value, datetime.datetime) else value

    tags = [f"{name}{mock_random.get_random_hex(6)}" for name in ("mine", "moto")]
    mine = outcomes(compare, tags[0])
    theirs = outcomes(calls._process_request.__wrapped__, tags[1])
    assert plain(mine, tags[0]) == plain(theirs, tags[1])
    assert len(checked) >= 25 and any("%20" in url for url in checked)
    errors = [a["Error"]["Code"] for a in mine if "Error" in a]
    assert errors == ["ConditionalCheckFailedException", "404", "AWS.SimpleQueueService.NonExistentQueue",
                      "InvalidArn"], errors
    # _services: moto's loop's matches, in its order
    for url in set(checked) | {"https://s3.amazonaws.com/b", "https://streams.dynamodb.eu-west-1.amazonaws.com/",
                               "https://x.ddb.eu-west-1.amazonaws.com/", "https://example.com/", "http://localhost:5000/"}:
        clean = url.split("?")[0]
        assert calls._services(clean) == tuple(s for s, p in backend_index.backend_url_patterns if p.match(clean))


def test_sqs_sends_with_the_attributes_view_equal_motos_own():
    """mxflow_local.sqs: inside a send, `Queue.attributes` is a view that reads ContentBasedDeduplication
    alone. Sends to a standard queue, a FIFO queue and a FIFO queue with content-based deduplication
    (duplicates within the window dropped, a FIFO send without its group or deduplication id refused)
    leave the queues as moto's own sends do; the view equals moto's dict key by key; a send no longer
    counts the queue's messages (the canary fails if the view is not what a send reads)."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws
    from moto.sqs.models import Queue, SQSBackend, sqs_backends

    from mxflow_local import sqs

    sqs.install()

    def outcomes(region: str) -> list:
        client = boto3.client("sqs", region_name=region, aws_access_key_id="t", aws_secret_access_key="t")
        queues = {"standard": client.create_queue(QueueName="canary")["QueueUrl"],
                  "fifo": client.create_queue(QueueName="canary.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"],
                  "content": client.create_queue(QueueName="canary-content.fifo", Attributes={
                      "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]}
        sends = [{"MessageBody": "a"}, {"MessageBody": "a", "MessageGroupId": "g"},
                 {"MessageBody": "b", "MessageGroupId": "g", "MessageDeduplicationId": "d1"},
                 {"MessageBody": "c", "MessageGroupId": "g", "MessageDeduplicationId": "d1"},
                 {"MessageBody": "a", "MessageGroupId": "h"}, {"MessageBody": "e", "DelaySeconds": 1}]
        answers, counts = [], []
        for kind, url in queues.items():
            counted.clear()
            for send in sends:
                try:
                    client.send_message(QueueUrl=url, **send)
                    answers.append((kind, send["MessageBody"], "sent"))
                except ClientError as error:
                    answers.append((kind, send["MessageBody"], error.response["Error"]["Code"]))
            client.send_message_batch(QueueUrl=url, Entries=[
                {"Id": "1", "MessageBody": "batch", "MessageGroupId": "g", "MessageDeduplicationId": "d9"}])
            counts.append(len(counted))   # the queue's messages counted by the sends
            attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            answers.append((kind, {k: v for k, v in attributes.items() if "Timestamp" not in k and k != "QueueArn"}))
            received = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            answers.append((kind, sorted(m["Body"] for m in received.get("Messages", []))))
            for queue in sqs_backends["123456789012"][region].queues.values():
                view = sqs._AttributesView(queue)
                assert view.get(sqs.CONTENT_BASED_DEDUPLICATION) == queue.attributes.get(sqs.CONTENT_BASED_DEDUPLICATION)
                assert dict(view) == queue.attributes
        return answers, counts

    counted = []
    counting = Queue.__dict__["approximate_number_of_messages"]

    def approximate_number_of_messages(self):
        counted.append(self.name)
        return counting.fget(self)

    patched = {"attributes": Queue.__dict__["attributes"], **{name: getattr(SQSBackend, name) for name in sqs.SENDS}}
    with mock_aws():
        Queue.approximate_number_of_messages = property(approximate_number_of_messages)
        try:
            mine, counts_mine = outcomes("eu-west-1")
            Queue.attributes = sqs._ORIGINAL_ATTRIBUTES
            for name in sqs.SENDS:
                setattr(SQSBackend, name, patched[name].__wrapped__)
            try:
                theirs, counts_theirs = outcomes("eu-west-2")
            finally:
                Queue.attributes = patched["attributes"]
                for name in sqs.SENDS:
                    setattr(SQSBackend, name, patched[name])
        finally:
            Queue.approximate_number_of_messages = counting
    assert mine == theirs
    assert ("fifo", "a", "MissingParameter") in mine and ("content", "a", "sent") in mine
    assert [a for a in mine if a[0] == "content" and isinstance(a[1], list)] == [("content", ["a", "b", "batch"])]
    assert counts_mine == [0, 0, 0] and all(count > 0 for count in counts_theirs), (counts_mine, counts_theirs)
