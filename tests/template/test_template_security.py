"""Security and shape properties DESIGN.md section 6 demands of template.yaml, checked on the template
as CloudFormation receives it (after the SAM transform: generated roles, OpenAPI body, resources)."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import PLACEHOLDER, resources_of

KEY = "PaymentKey"

# --------------------------------------------------------------------------------------------------
# encryption


def refers_to_key(value) -> bool:
    return value in ({"Ref": KEY}, {"Fn::GetAtt": [KEY, "Arn"]})


def _bucket_encrypted(props: dict) -> bool:
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    return all(
        r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        and refers_to_key(r["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
        and r.get("BucketKeyEnabled") is True
        for r in rules
    ) and bool(rules)


# Resource types that can be encrypted with a customer-managed key, and how to tell that they are.
ENCRYPTED_WITH_THE_KEY = {
    "AWS::DynamoDB::Table": lambda p: p["SSESpecification"]["SSEEnabled"] is True
    and p["SSESpecification"]["SSEType"] == "KMS"
    and refers_to_key(p["SSESpecification"]["KMSMasterKeyId"]),
    "AWS::S3::Bucket": _bucket_encrypted,
    "AWS::SQS::Queue": lambda p: refers_to_key(p.get("KmsMasterKeyId")),
    "AWS::SNS::Topic": lambda p: refers_to_key(p.get("KmsMasterKeyId")),
    "AWS::Logs::LogGroup": lambda p: refers_to_key(p.get("KmsKeyId")),
    "AWS::Lambda::Function": lambda p: refers_to_key(p.get("KmsKeyArn")),
}
# Resource types that hold no data a customer-managed key could protect (configuration, policies,
# permissions) or whose service offers no such key.
NOTHING_TO_ENCRYPT = {
    "AWS::KMS::Key", "AWS::KMS::Alias", "AWS::IAM::Role", "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersion",  # code, no CMK option
    "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
    "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard",
    "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage",  # no cache enabled
    "AWS::ApiGateway::Account",
    "AWS::Cognito::UserPool", "AWS::Cognito::UserPoolResourceServer", "AWS::Cognito::UserPoolDomain",
    "AWS::Cognito::UserPoolClient",
}
# Could be encrypted with the key but is not, and why. AWS::Serverless::StateMachine (aws-sam-translator
# 1.115) has no EncryptionConfiguration to pass through; execution data is encrypted with an AWS-owned
# key and never written to the logs (IncludeExecutionData false, asserted below).
KNOWN_GAPS = {"AWS::StepFunctions::StateMachine"}


def test_every_resource_type_is_classified_for_encryption(cfn):
    unclassified = {
        r["Type"] for r in cfn["Resources"].values()
    } - set(ENCRYPTED_WITH_THE_KEY) - NOTHING_TO_ENCRYPT - KNOWN_GAPS
    assert not unclassified, f"decide how these are encrypted with the stack key: {sorted(unclassified)}"


@pytest.mark.parametrize("resource_type", sorted(ENCRYPTED_WITH_THE_KEY))
def test_encryptable_resources_use_the_stack_key(cfn, resource_type):
    found = resources_of(cfn, resource_type)
    not_encrypted = [lid for lid, r in found.items() if not ENCRYPTED_WITH_THE_KEY[resource_type](r["Properties"])]
    assert not not_encrypted, f"{resource_type} not encrypted with {KEY}: {not_encrypted}"


def test_the_key_rotates_and_serves_logs_and_alarms(cfn):
    key = cfn["Resources"][KEY]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals = {json.dumps(s["Principal"], sort_keys=True) for s in key["KeyPolicy"]["Statement"]}
    assert any("logs." in p for p in principals), "CloudWatch Logs must be able to use the key (encrypted log groups)"
    assert any("cloudwatch.amazonaws.com" in p for p in principals), "alarms publish to a KMS-encrypted topic"


def test_every_resource_kind_the_design_names_exists(cfn):
    for resource_type in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SNS::Topic",
                          "AWS::Logs::LogGroup", "AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
        assert resources_of(cfn, resource_type), resource_type


# --------------------------------------------------------------------------------------------------
# TLS-only resource policies


def _denies_insecure_transport(statement: dict, action_prefix: str) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    return (
        statement["Effect"] == "Deny"
        and statement["Principal"] == "*"
        and all(a.startswith(action_prefix) for a in actions)
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    )


def test_bucket_policies_deny_plain_http_on_bucket_and_objects(cfn):
    policies = resources_of(cfn, "AWS::S3::BucketPolicy").values()
    for lid in resources_of(cfn, "AWS::S3::Bucket"):
        policy = [p for p in policies if p["Properties"]["Bucket"] == {"Ref": lid}]
        assert policy, f"{lid} has no bucket policy"
        deny = [s for s in policy[0]["Properties"]["PolicyDocument"]["Statement"] if _denies_insecure_transport(s, "s3:")]
        assert deny, f"{lid}: no Deny on aws:SecureTransport false"
        assert "s3:*" in (deny[0]["Action"] if isinstance(deny[0]["Action"], list) else [deny[0]["Action"]])
        resources = deny[0]["Resource"]
        assert {"Fn::GetAtt": [lid, "Arn"]} in resources
        assert {"Fn::Sub": "${%s.Arn}/*" % lid} in resources


def test_queue_and_topic_policies_deny_plain_http(cfn):
    queue_policies = resources_of(cfn, "AWS::SQS::QueuePolicy").values()
    for lid in resources_of(cfn, "AWS::SQS::Queue"):
        covering = [p for p in queue_policies if {"Ref": lid} in p["Properties"]["Queues"]]
        assert covering, f"queue {lid} has no queue policy"
        statements = covering[0]["Properties"]["PolicyDocument"]["Statement"]
        deny = [s for s in statements if _denies_insecure_transport(s, "sqs:")]
        assert deny and {"Fn::GetAtt": [lid, "Arn"]} in deny[0]["Resource"], lid
    topic_policies = resources_of(cfn, "AWS::SNS::TopicPolicy").values()
    for lid in resources_of(cfn, "AWS::SNS::Topic"):
        covering = [p for p in topic_policies if {"Ref": lid} in p["Properties"]["Topics"]]
        assert covering, f"topic {lid} has no topic policy"
        statements = covering[0]["Properties"]["PolicyDocument"]["Statement"]
        deny = [s for s in statements if _denies_insecure_transport(s, "sns:")]
        assert deny and "sns:Publish" in deny[0]["Action"], lid


def test_archive_bucket_is_private_versioned_and_tiered(cfn):
    props = cfn["Resources"]["ArchiveBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(props["PublicAccessBlockConfiguration"][k] is True for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(r.get("Transitions") for r in rules), "no transition to cheaper storage"
    assert any(r.get("NoncurrentVersionExpiration") for r in rules), "noncurrent versions never expire"
    # Object Lock is a parameter: off by default, on (with the chosen mode) when asked for.
    assert props["ObjectLockEnabled"]["Fn::If"][0] == "UseObjectLock"


# --------------------------------------------------------------------------------------------------
# least privilege

# Actions that support no resource-level permission (Service Authorization Reference): "*" is the
# narrowest resource they accept. Step Functions needs them to deliver logs to CloudWatch Logs.
RESOURCE_STAR_ONLY = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}
# AWS-managed policies SAM or the template attach; each is narrow and service-scoped.
ALLOWED_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole",      # write the function's own logs
    "AWSXrayWriteOnlyAccess",                         # Tracing: Active / Tracing Enabled
    "service-role/AmazonAPIGatewayPushToCloudWatchLogs",  # API Gateway's account-level logging role
}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def wildcard_findings(statements: list[dict], where: str, *, identity_policy: bool) -> list[str]:
    """What is too broad in a policy's Allow statements: `*` or `service:*` actions, NotAction, and
    (identity policies) Resource "*" for actions that support resource-level permissions."""
    found = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue  # a broad Deny only narrows
        if "NotAction" in statement:
            found.append(f"{where}: NotAction in an Allow")
        actions = _as_list(statement.get("Action", []))
        for action in actions:
            if not isinstance(action, str) or action == "*" or action.endswith(":*"):
                found.append(f"{where}: wildcard action {action!r}")
        if identity_policy:
            if "NotResource" in statement:
                found.append(f"{where}: NotResource in an Allow")
            if "*" in _as_list(statement.get("Resource", [])):
                broad = [a for a in actions if a not in RESOURCE_STAR_ONLY]
                if broad:
                    found.append(f"{where}: Resource '*' for {broad}")
    return found


def identity_statements(cfn: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for lid, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            found[lid] = [s for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found[lid] = list(props["PolicyDocument"]["Statement"])
    return found


RESOURCE_POLICIES = {
    "AWS::KMS::Key": "KeyPolicy", "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument", "AWS::SNS::TopicPolicy": "PolicyDocument",
}


def test_the_wildcard_check_catches_broad_statements():
    assert wildcard_findings([{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "arn"}], "x", identity_policy=True)
    assert wildcard_findings([{"Effect": "Allow", "Action": ["*"], "Resource": "arn"}], "x", identity_policy=True)
    assert wildcard_findings([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}], "x", identity_policy=True)
    assert wildcard_findings([{"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn"}], "x", identity_policy=True)
    assert not wildcard_findings([{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}], "x", identity_policy=True)
    assert not wildcard_findings([{"Effect": "Allow", "Action": "logs:CreateLogDelivery", "Resource": "*"}], "x",
                                 identity_policy=True)


def test_no_iam_statement_has_a_wildcard_action_or_unscoped_resource(cfn):
    roles = resources_of(cfn, "AWS::IAM::Role")
    # The SAM policy templates (LambdaInvokePolicy) are expanded: the state machine role has them inline.
    assert len(identity_statements(cfn)["PaymentStateMachineRole"]) >= 5
    assert {"ApiFunctionRole", "ValidateFunctionRole", "ParkFunctionRole", "DecisionTimeoutFunctionRole",
            "FinaliseFunctionRole", "ReleaseFunctionRole", "PaymentStateMachineRole"} <= set(roles)
    findings = []
    for lid, statements in identity_statements(cfn).items():
        findings += wildcard_findings(statements, lid, identity_policy=True)
    for lid, res in cfn["Resources"].items():
        if res["Type"] in RESOURCE_POLICIES:
            document = res["Properties"][RESOURCE_POLICIES[res["Type"]]]
            findings += wildcard_findings(document["Statement"], lid, identity_policy=False)
    assert not findings, "\n".join(findings)


def test_only_narrow_aws_managed_policies_are_attached(cfn):
    for lid, role in resources_of(cfn, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            text = arn if isinstance(arn, str) else arn["Fn::Sub"]
            name = re.sub(r"^arn:[^:]+:iam::aws:policy/", "", text.replace("${AWS::Partition}", "aws"))
            assert name in ALLOWED_MANAGED_POLICIES, f"{lid} attaches {text}"


def _actions_of(statements: list[dict]) -> set[str]:
    return {a for s in statements if s.get("Effect") == "Allow" for a in _as_list(s.get("Action", []))}


def test_each_function_gets_only_what_its_step_needs(cfn):
    actions = {lid: _actions_of(st) for lid, st in identity_statements(cfn).items()}
    function_roles = [lid for lid in actions if lid.endswith("FunctionRole")]
    assert len(function_roles) == 6
    # Only the release step sends downstream; only the API starts, resumes and redrives executions.
    assert [r for r in function_roles if "sqs:SendMessage" in actions[r]] == ["ReleaseFunctionRole"]
    for action in ("states:StartExecution", "states:RedriveExecution"):
        assert [r for r in function_roles if action in actions[r]] == ["ApiFunctionRole"], action
    # Decisions resume the execution: the API's decide routes, and a retried park (decision claimed first).
    assert {r for r in function_roles if "states:SendTaskSuccess" in actions[r]} == {"ApiFunctionRole", "ParkFunctionRole"}
    # ... on this state machine only: the park role names it (a reference would be circular).
    (machine,) = resources_of(cfn, "AWS::StepFunctions::StateMachine").values()
    name = machine["Properties"]["StateMachineName"]["Fn::Sub"]
    park = [s for s in identity_statements(cfn)["ParkFunctionRole"] if "states:SendTaskSuccess" in _as_list(s["Action"])]
    assert [s["Resource"] for s in park] == [
        {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + name}]
    # Nobody deletes payment records or scans the table.
    for role in function_roles:
        assert not actions[role] & {"dynamodb:DeleteItem", "dynamodb:Scan", "s3:DeleteObject"}, role
        assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions[role], role
    # The state machine invokes exactly the five workflow functions, never the API function.
    invoked = {s["Resource"]["Fn::Sub"][1]["functionName"]["Ref"]
               for s in identity_statements(cfn)["PaymentStateMachineRole"] if "lambda:InvokeFunction" in _as_list(s["Action"])}
    assert invoked == {"ValidateFunction", "ParkFunction", "DecisionTimeoutFunction", "FinaliseFunction", "ReleaseFunction"}


# --------------------------------------------------------------------------------------------------
# the payment table, the release queue and its DLQ


def test_payment_table_matches_the_shared_design(cfn):
    props = cfn["Resources"]["PaymentTable"]["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "InFlightByStatus"
    assert gsi["KeySchema"] == [{"AttributeName": "inflightShard", "KeyType": "HASH"},
                                {"AttributeName": "statusSince", "KeyType": "RANGE"}]
    assert gsi["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status", "version", "ownerRegion"]}
    assert cfn["Resources"]["PaymentTable"]["DeletionPolicy"] == "Retain"


def test_release_queue_is_high_throughput_fifo_with_explicit_dedup_and_a_dlq(cfn):
    queue = cfn["Resources"]["ReleaseQueue"]["Properties"]
    assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is False
    assert queue["DeduplicationScope"] == "messageGroup" and queue["FifoThroughputLimit"] == "perMessageGroupId"
    dlq_id = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert cfn["Resources"][dlq_id]["Properties"]["FifoQueue"] is True
    assert 1 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10


def test_every_queue_has_a_dlq_and_every_dlq_an_alarm(cfn):
    queues = resources_of(cfn, "AWS::SQS::Queue")
    dlqs = {q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            for q in queues.values() if "RedrivePolicy" in q["Properties"]}
    assert dlqs, "no dead-letter queue"
    assert set(queues) - dlqs == {lid for lid, q in queues.items() if "RedrivePolicy" in q["Properties"]}, \
        "a queue that is not a DLQ has no RedrivePolicy"
    alarms = resources_of(cfn, "AWS::CloudWatch::Alarm").values()
    for dlq in dlqs:
        assert any(a["Properties"]["Namespace"] == "AWS/SQS"
                   and a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
                   and {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}} in a["Properties"]["Dimensions"]
                   and a["Properties"]["Threshold"] == 0 and a["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
                   for a in alarms), f"no depth > 0 alarm on {dlq}"


def test_asynchronously_invoked_functions_have_a_failure_destination(cfn):
    """A function that some service invokes asynchronously (SNS, EventBridge, S3 notifications) loses
    events after its retries unless it has a DLQ or an on-failure destination."""
    async_targets = set()
    for res in cfn["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Lambda::Permission" and props.get("Principal") != "apigateway.amazonaws.com":
            async_targets.add(props["FunctionName"]["Ref"])
    with_destination = {lid for lid, f in resources_of(cfn, "AWS::Lambda::Function").items() if f["Properties"].get("DeadLetterConfig")}
    with_destination |= {c["Properties"]["FunctionName"]["Ref"] for c in resources_of(cfn, "AWS::Lambda::EventInvokeConfig").values()
                         if c["Properties"].get("DestinationConfig", {}).get("OnFailure")}
    assert async_targets <= with_destination, f"async targets without DLQ/destination: {sorted(async_targets - with_destination)}"
    # Today every function is invoked synchronously: by API Gateway or by the state machine.
    assert {p["Properties"]["Principal"] for p in resources_of(cfn, "AWS::Lambda::Permission").values()} == {"apigateway.amazonaws.com"}


# --------------------------------------------------------------------------------------------------
# the API: scopes per route, problem+json gateway responses

EXPECTED_ROUTES = {
    ("/payments", "post"): ["payments/submit"],
    ("/payments/{id}", "get"): ["payments/read"],
    ("/payments/{id}/messages/{name}", "get"): ["payments/read"],
    ("/payments/{id}/approve", "post"): ["payments/decide"],
    ("/payments/{id}/reject", "post"): ["payments/decide"],
    ("/payments/{id}/cancel", "post"): ["payments/decide"],
    ("/payments/{id}/redrive", "post"): ["payments/operate"],
    ("/health", "get"): None,
}


@pytest.fixture(scope="module")
def openapi(cfn) -> dict:
    (api,) = resources_of(cfn, "AWS::ApiGateway::RestApi").values()
    return api["Properties"]["Body"]


def test_every_route_has_its_scope_except_health(openapi):
    routes = {}
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            security = operation.get("security") or []
            scopes = [s for requirement in security for name, scope in requirement.items() if name == "CognitoAuthorizer" for s in scope]
            routes[(path, method)] = scopes or None
            if scopes:
                assert security == [{"CognitoAuthorizer": scopes}], (path, method, security)
    assert routes == EXPECTED_ROUTES


def test_the_authorizer_is_the_user_pool_and_the_scopes_exist_there(cfn, openapi):
    scheme = openapi["components"]["securitySchemes"]["CognitoAuthorizer"]
    assert scheme["x-amazon-apigateway-authtype"] == "cognito_user_pools"
    assert scheme["x-amazon-apigateway-authorizer"]["providerARNs"] == [{"Fn::GetAtt": ["UserPool", "Arn"]}]
    server = cfn["Resources"]["PaymentsResourceServer"]["Properties"]
    defined = {f"{server['Identifier']}/{s['ScopeName']}" for s in server["Scopes"]}
    used = {s for scopes in EXPECTED_ROUTES.values() if scopes for s in scopes}
    assert defined == used == {"payments/submit", "payments/read", "payments/decide", "payments/operate"}
    client = cfn["Resources"]["ApiClient"]["Properties"]
    assert client["GenerateSecret"] is True and client["AllowedOAuthFlows"] == ["client_credentials"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True and set(client["AllowedOAuthScopes"]) == defined
    assert resources_of(cfn, "AWS::Cognito::UserPoolDomain")


@pytest.mark.parametrize("response_type,status", [("UNAUTHORIZED", 401), ("ACCESS_DENIED", 403),
                                                  ("DEFAULT_4XX", None), ("DEFAULT_5XX", None),
                                                  ("REQUEST_TOO_LARGE", 413), ("UNSUPPORTED_MEDIA_TYPE", 415)])
def test_gateway_made_errors_are_problem_json(openapi, response_type, status):
    responses = openapi["x-amazon-apigateway-gateway-responses"]
    response = responses[response_type]
    assert response["responseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
    # Substitute what API Gateway would ($context.error.messageString is a quoted JSON string).
    body = response["responseTemplates"]["application/json"]
    body = body.replace("$context.error.messageString", json.dumps("Unauthorized")).replace("$context.requestId", "r-1")
    problem = json.loads(body)
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert problem["status"] == int(response["statusCode"])
    if status is not None:
        assert problem["status"] == status


def test_every_gateway_response_is_consistent(openapi):
    for response_type, response in openapi["x-amazon-apigateway-gateway-responses"].items():
        body = response["responseTemplates"]["application/json"]
        problem = json.loads(body.replace("$context.error.messageString", '"m"').replace("$context.requestId", "r"))
        assert problem["status"] == int(response["statusCode"]), response_type
        assert response["responseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"


def test_api_stage_traces_and_logs_access_without_payment_data(cfn):
    (stage,) = resources_of(cfn, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "v1" and props["TracingEnabled"] is True
    log_format = props["AccessLogSetting"]["Format"]
    assert "$context.resourcePath" in log_format
    for leak in ("$context.path", "$input.body", "$context.authorizer.claims"):
        assert leak not in log_format
    for setting in props["MethodSettings"]:
        assert setting["DataTraceEnabled"] is False and setting["LoggingLevel"] == "OFF"


# --------------------------------------------------------------------------------------------------
# functions, state machine, alarms, parameters, outputs

AGREED_ENVIRONMENT = {"PAYMENT_TABLE", "ARCHIVE_BUCKET", "RELEASE_QUEUE_URL", "EVENTS_TOPIC_ARN", "OPERATOR_BIC",
                      "VALIDATION_PROFILE", "DECISION_TIMEOUT_SECONDS", "AUTO_APPROVE_MAX_AMOUNT", "MAX_MESSAGE_BYTES",
                      "MXFLOW_SCHEMA_DIR", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}


def test_functions_are_arm64_python313_traced_with_the_layer_and_the_agreed_environment(cfn):
    functions = resources_of(cfn, "AWS::Lambda::Function")
    assert set(functions) == {"ApiFunction", "ValidateFunction", "ParkFunction", "DecisionTimeoutFunction",
                              "FinaliseFunction", "ReleaseFunction"}
    for lid, fn in functions.items():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13" and props["Architectures"] == ["arm64"], lid
        assert props["Handler"] == "app.lambda_handler", lid
        assert props["TracingConfig"] == {"Mode": "Active"}, lid
        assert {"Ref": "MxflowLayer"} in [layer for layer in props["Layers"]] or any(
            "MxflowLayer" in json.dumps(layer) for layer in props["Layers"]), lid
        variables = props["Environment"]["Variables"]
        assert AGREED_ENVIRONMENT <= set(variables), (lid, AGREED_ENVIRONMENT - set(variables))
        assert ("STATE_MACHINE_ARN" in variables) == (lid == "ApiFunction"), lid
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert cfn["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup", lid


def test_state_machine_is_standard_logged_without_data_and_traced(cfn, asl_text):
    (lid, machine), = resources_of(cfn, "AWS::StepFunctions::StateMachine").items()
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ERROR" and logging["IncludeExecutionData"] is False
    (destination,) = logging["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert refers_to_key(cfn["Resources"][group]["Properties"]["KmsKeyId"])
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_every_asl_placeholder_has_a_substitution_and_vice_versa(cfn, asl_text):
    (machine,) = resources_of(cfn, "AWS::StepFunctions::StateMachine").values()
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    assert set(PLACEHOLDER.findall(asl_text)) == set(substitutions)
    for name in ("Validate", "Park", "DecisionTimeout", "Finalise", "Release"):
        assert substitutions[f"{name}FunctionArn"] == {"Fn::GetAtt": [f"{name}Function", "Arn"]}
    assert substitutions["LambdaInvoke"] == {"Fn::Sub": "arn:${AWS::Partition}:states:::lambda:invoke"}
    assert substitutions["LambdaInvokeWaitForTaskToken"] == {
        "Fn::Sub": "arn:${AWS::Partition}:states:::lambda:invoke.waitForTaskToken"}


def test_alarms_cover_failures_timeouts_dlq_api_errors_and_stale_pending_payments(cfn):
    alarms = [a["Properties"] for a in resources_of(cfn, "AWS::CloudWatch::Alarm").values()]
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms}
    assert {("AWS/States", "ExecutionsFailed"), ("AWS/States", "ExecutionsTimedOut"),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/ApiGateway", "5XXError"),
            ("mxflow", "OldestPendingAgeSeconds")} <= watched
    pending = next(a for a in alarms if a["MetricName"] == "OldestPendingAgeSeconds")
    assert pending["Threshold"] == {"Ref": "PendingAlarmThresholdSeconds"}
    assert pending["Dimensions"] == [{"Name": "service", "Value": "mxflow"}]  # Powertools' default dimension
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], alarm["MetricName"]
    api_alarm = next(a for a in alarms if a["MetricName"] == "5XXError")
    (api,) = resources_of(cfn, "AWS::ApiGateway::RestApi").values()
    assert {"Name": "ApiName", "Value": api["Properties"]["Name"]} in api_alarm["Dimensions"]
    assert resources_of(cfn, "AWS::CloudWatch::Dashboard")


def test_parameters_of_the_shared_design(sam):
    params = sam["Parameters"]
    assert params["OperatorBic"]["Default"] == "MXFLGB2LXXX"
    assert params["ValidationProfile"]["Default"] == "iso" and params["ValidationProfile"]["AllowedValues"] == ["iso", "cbpr+"]
    assert params["DecisionTimeoutSeconds"]["Default"] == 86400
    assert params["AutoApproveMaxAmount"]["Default"] == ""
    assert params["MaxMessageBytes"]["Default"] == 1048576
    assert params["SchemaLayerArn"]["Default"] == ""
    for name in ("PendingAlarmThresholdSeconds", "LogRetentionDays"):
        assert name in params


def test_the_generated_message_versions_are_parameters_the_functions_read(sam, cfn):
    """StatusReportVersion, CancellationAnswerVersion, AppHeaderVersion: CBPR+'s defaults, exactly the
    versions the builders can build, passed to every function as the variables the lifecycle reads."""
    from mxflow.iso20022 import CBPR_PLUS_VERSIONS, MessageVersions

    params = sam["Parameters"]
    for name, variable, parameter, supported in MessageVersions.SETTINGS:
        assert params[parameter]["Default"] == getattr(CBPR_PLUS_VERSIONS, name)
        assert params[parameter]["AllowedValues"] == list(supported)
        assert sam["Globals"]["Function"]["Environment"]["Variables"][variable] == {"Ref": parameter}
    for lid, fn in resources_of(cfn, "AWS::Lambda::Function").items():
        variables = fn["Properties"]["Environment"]["Variables"]
        assert {v for _n, v, _p, _s in MessageVersions.SETTINGS} <= set(variables), lid


def test_outputs(sam):
    assert {"ApiUrl", "UserPoolId", "ClientId", "TokenUrl", "StateMachineArn", "PaymentTableName",
            "ArchiveBucketName", "ReleaseQueueUrl", "PaymentEventsTopicArn"} <= set(sam["Outputs"])
