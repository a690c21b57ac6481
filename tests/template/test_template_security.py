"""Security and shape properties of template.yaml (README.md, "Deploy to AWS"), checked on the template
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
    "AWS::Events::Rule",  # the sampler's schedule: configuration only
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
    # The SAM policy templates (LambdaInvokePolicy) are expanded: the state machine roles have them inline.
    assert len(identity_statements(cfn)["PaymentStateMachineRole"]) >= 5
    assert len(identity_statements(cfn)["PaymentFlowRole"]) >= 6
    assert {"ApiFunctionRole", "ValidateFunctionRole", "ParkFunctionRole", "DecisionTimeoutFunctionRole",
            "SendFunctionRole", "SettleFunctionRole", "SamplerFunctionRole", "PaymentStateMachineRole",
            "PaymentFlowRole"} <= set(roles)
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


def _named_machine(cfn, logical_id: str) -> dict:
    name = cfn["Resources"][logical_id]["Properties"]["StateMachineName"]["Fn::Sub"]
    return {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + name}


def _invoked_functions(statements: list[dict]) -> set[str]:
    return {s["Resource"]["Fn::Sub"][1]["functionName"]["Ref"]
            for s in statements if "lambda:InvokeFunction" in _as_list(s["Action"])}


def test_each_function_gets_only_what_its_step_needs(cfn):
    actions = {lid: _actions_of(st) for lid, st in identity_statements(cfn).items()}
    statements = identity_statements(cfn)
    function_roles = [lid for lid in actions if lid.endswith("FunctionRole")]
    assert len(function_roles) == 7
    # Only the Send step sends downstream; only the API redrives.
    assert [r for r in function_roles if "sqs:SendMessage" in actions[r]] == ["SendFunctionRole"]
    assert [r for r in function_roles if "states:RedriveExecution" in actions[r]] == ["ApiFunctionRole"]
    # PaymentFlow is started by the API (a new or approved payment) and by the anchor's wait (a stage to
    # resume); the anchor's wait is answered by the API (reject, cancel; a failed start) and by a wait
    # that finds its payment finished.
    assert {r for r in function_roles if "states:StartExecution" in actions[r]} == {"ApiFunctionRole", "ParkFunctionRole"}
    assert {r for r in function_roles if "states:SendTaskSuccess" in actions[r]} == {"ApiFunctionRole", "ParkFunctionRole"}
    assert {r for r in function_roles if "states:SendTaskFailure" in actions[r]} == {"ApiFunctionRole"}
    park = [s for s in statements["ParkFunctionRole"] if "states:SendTaskSuccess" in _as_list(s["Action"])]
    assert [s["Resource"] for s in park] == [_named_machine(cfn, "PaymentStateMachine")]
    start = [s for s in statements["ParkFunctionRole"] if "states:StartExecution" in _as_list(s["Action"])]
    assert [s["Resource"] for s in start] == [_named_machine(cfn, "PaymentFlow")]
    # Nobody deletes payment records or scans the table; the sampler only reads.
    for role in function_roles:
        assert not actions[role] & {"dynamodb:DeleteItem", "dynamodb:Scan", "s3:DeleteObject",
                                    "dynamodb:TransactWriteItems"}, role
        assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions[role], role
    assert not actions["SamplerFunctionRole"] & {"dynamodb:PutItem", "dynamodb:UpdateItem", "s3:PutObject"}
    # Only the API writes received messages; the steps read them and write generated ones only.
    received = {r for r in function_roles for s in statements[r] if "s3:PutObject" in _as_list(s["Action"])
                and "received/" in json.dumps(s["Resource"])}
    assert received == {"ApiFunctionRole"}
    # The state machines invoke exactly their steps' functions, never the API function.
    assert _invoked_functions(statements["PaymentFlowRole"]) == {"ValidateFunction", "ParkFunction", "SendFunction",
                                                                  "SettleFunction"}
    assert _invoked_functions(statements["PaymentStateMachineRole"]) == {"ParkFunction", "DecisionTimeoutFunction"}
    # The flow starts and answers only the anchor; the anchor starts and follows only the flow.
    flow_starts = [s["Resource"] for s in statements["PaymentFlowRole"] if "states:StartExecution" in _as_list(s["Action"])]
    assert flow_starts == [_named_machine(cfn, "PaymentStateMachine")]
    anchor_starts = [s["Resource"] for s in statements["PaymentStateMachineRole"]
                     if "states:StartExecution" in _as_list(s["Action"])]
    assert anchor_starts == [{"Ref": "PaymentFlow"}]


# --------------------------------------------------------------------------------------------------
# the payment table, the release queue and its DLQ


def test_payment_table_matches_the_shared_design(cfn):
    props = cfn["Resources"]["PaymentTable"]["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}  # the archive journal's source
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    indexes = {gsi["IndexName"]: gsi for gsi in props["GlobalSecondaryIndexes"]}
    assert {name: [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] for name, gsi in indexes.items()} == {
        "InFlight": [("inflight", "HASH"), ("receivedAt", "RANGE")],
        "ByClient": [("clientId", "HASH"), ("receivedAt", "RANGE")],
        "Suspended": [("suspendedIn", "HASH"), ("suspendedAt", "RANGE")]}
    # KEYS_ONLY on keys written when a payment enters or leaves the index: a status change writes none.
    assert {gsi["Projection"]["ProjectionType"] for gsi in indexes.values()} == {"KEYS_ONLY"}
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
    # Every function is invoked synchronously (API Gateway, the state machines) but the sampler, by its schedule.
    assert {p["Properties"]["Principal"] for p in resources_of(cfn, "AWS::Lambda::Permission").values()} == {
        "apigateway.amazonaws.com", "events.amazonaws.com"}
    assert async_targets == {"SamplerFunction"}


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
    ("/payments/{id}/release/confirm", "post"): ["payments/operate"],
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


def test_xml_reaches_the_function_as_the_bytes_sent(cfn, openapi):
    """Binary media types: API Gateway hands XML bodies over base64-encoded, unaltered (no text
    conversion that would replace invalid bytes), so the archive keeps what was sent."""
    (api,) = resources_of(cfn, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["BinaryMediaTypes"] == ["application~1xml", "text~1xml"]


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
                      "MXFLOW_SCHEMA_DIR", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL",
                      "STATE_MACHINE_ARN", "PAYMENT_FLOW_ARN"}
FUNCTIONS = {"ApiFunction", "ValidateFunction", "ParkFunction", "DecisionTimeoutFunction", "SendFunction",
             "SettleFunction", "SamplerFunction"}


def test_functions_are_arm64_python313_traced_with_the_layer_and_the_agreed_environment(cfn):
    functions = resources_of(cfn, "AWS::Lambda::Function")
    assert set(functions) == FUNCTIONS
    for lid, fn in functions.items():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13" and props["Architectures"] == ["arm64"], lid
        assert props["Handler"] == "app.lambda_handler", lid
        assert props["TracingConfig"] == {"Mode": "Active"}, lid
        assert {"Ref": "MxflowLayer"} in [layer for layer in props["Layers"]] or any(
            "MxflowLayer" in json.dumps(layer) for layer in props["Layers"]), lid
        variables = props["Environment"]["Variables"]
        assert AGREED_ENVIRONMENT <= set(variables), (lid, AGREED_ENVIRONMENT - set(variables))
        # both state machines by their fixed names: a reference would be a cycle (they invoke the functions)
        assert variables["STATE_MACHINE_ARN"] == _named_machine(cfn, "PaymentStateMachine"), lid
        assert variables["PAYMENT_FLOW_ARN"] == _named_machine(cfn, "PaymentFlow"), lid
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert cfn["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup", lid


def test_the_anchor_is_standard_the_flow_express_both_logged_without_data_and_traced(cfn):
    machines = resources_of(cfn, "AWS::StepFunctions::StateMachine")
    assert {lid: m["Properties"]["StateMachineType"] for lid, m in machines.items()} == {
        "PaymentStateMachine": "STANDARD", "PaymentFlow": "EXPRESS"}
    for lid, machine in machines.items():
        props = machine["Properties"]
        logging = props["LoggingConfiguration"]
        assert logging["Level"] == "ERROR" and logging["IncludeExecutionData"] is False, lid
        (destination,) = logging["Destinations"]
        group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert refers_to_key(cfn["Resources"][group]["Properties"]["KmsKeyId"]), lid
        assert props["TracingConfiguration"] == {"Enabled": True}, lid


@pytest.mark.parametrize("logical_id, asl_file", [("PaymentStateMachine", "payment.asl.json"),
                                                  ("PaymentFlow", "payment_flow.asl.json")])
def test_every_asl_placeholder_has_a_substitution_and_vice_versa(cfn, logical_id, asl_file):
    from .conftest import REPO

    text = (REPO / "statemachines" / asl_file).read_text()
    substitutions = cfn["Resources"][logical_id]["Properties"]["DefinitionSubstitutions"]
    assert set(PLACEHOLDER.findall(text)) == set(substitutions)
    for name, value in substitutions.items():
        if name.endswith("FunctionArn"):
            assert value == {"Fn::GetAtt": [name[:-len("Arn")], "Arn"]}, name
        elif name.endswith("StateMachineArn"):
            assert value == _named_machine(cfn, "PaymentStateMachine")
        elif name == "PaymentFlowArn":
            assert value == {"Ref": "PaymentFlow"}
        else:  # a service integration, in the stack's partition
            assert value["Fn::Sub"].startswith("arn:${AWS::Partition}:states:::"), name
    assert substitutions["LambdaInvoke"] == {"Fn::Sub": "arn:${AWS::Partition}:states:::lambda:invoke"}


def test_alarms_cover_failures_timeouts_dlq_api_errors_and_stale_pending_payments(cfn):
    alarms = [a["Properties"] for a in resources_of(cfn, "AWS::CloudWatch::Alarm").values()]
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms}
    assert {("AWS/States", "ExecutionsFailed"), ("AWS/States", "ExecutionsTimedOut"),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/ApiGateway", "5XXError"),
            ("mxflow", "OldestPendingAgeSeconds"), ("mxflow", "OldestInFlightAgeSeconds"),
            ("mxflow", "SuspendedPayments")} <= watched
    failed = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a["MetricName"] == "ExecutionsFailed"}
    assert failed == {"PaymentStateMachine", "PaymentFlow"}
    pending = next(a for a in alarms if a["MetricName"] == "OldestPendingAgeSeconds")
    assert pending["Threshold"] == {"Ref": "PendingAlarmThresholdSeconds"}
    stuck = next(a for a in alarms if a["MetricName"] == "OldestInFlightAgeSeconds")
    assert stuck["Threshold"] == {"Ref": "StuckAlarmThresholdSeconds"}
    # The sampler publishes every minute (zero when nothing waits): missing data means it stopped.
    for alarm in alarms:
        if alarm["Namespace"] == "mxflow":
            assert alarm["Dimensions"] == [{"Name": "service", "Value": "mxflow"}]  # Powertools' default dimension
            assert alarm["TreatMissingData"] == "breaching" and alarm["Period"] == 60, alarm["MetricName"]
    (schedule,) = resources_of(cfn, "AWS::Events::Rule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["SamplerFunction", "Arn"]}
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
    for name in ("PendingAlarmThresholdSeconds", "StuckAlarmThresholdSeconds", "LogRetentionDays"):
        assert name in params


def test_outputs(sam):
    assert {"ApiUrl", "UserPoolId", "ClientId", "TokenUrl", "StateMachineArn", "PaymentFlowArn", "PaymentTableName",
            "ArchiveBucketName", "ReleaseQueueUrl", "PaymentEventsTopicArn"} <= set(sam["Outputs"])
