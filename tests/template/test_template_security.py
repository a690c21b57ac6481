"""Security and shape properties of template.yaml (README.md, "Deploy to AWS"), checked on the template
as CloudFormation receives it (after the SAM transform: generated roles, OpenAPI body, resources)."""

from __future__ import annotations

import functools
import json
import re

import pytest
from policy_sentry.querying.actions import get_action_data

from mxflow_local.template import NO_VALUE, Resolver, load_template, references_of

from .conftest import PLACEHOLDER, TEMPLATE, resources_of

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
    # The payment table is a global table (docs/regions.md): encrypted with a KMS key, this Region's replica
    # with the stack key (the peer's replica with the peer stack's key, by its alias).
    "AWS::DynamoDB::GlobalTable": lambda p: p["SSESpecification"]["SSEEnabled"] is True
    and p["SSESpecification"]["SSEType"] == "KMS"
    and p["Replicas"][0]["Region"] == {"Ref": "AWS::Region"}
    and refers_to_key(p["Replicas"][0]["SSESpecification"]["KMSMasterKeyId"]),
    "AWS::S3::Bucket": _bucket_encrypted,
    "AWS::SQS::Queue": lambda p: refers_to_key(p.get("KmsMasterKeyId")),
    "AWS::SNS::Topic": lambda p: refers_to_key(p.get("KmsMasterKeyId")),
    "AWS::Logs::LogGroup": lambda p: refers_to_key(p.get("KmsKeyId")),
    "AWS::Lambda::Function": lambda p: refers_to_key(p.get("KmsKeyArn")),
    "AWS::CloudTrail::Trail": lambda p: refers_to_key(p.get("KMSKeyId")),
    # a mapping's filter criteria (the archive journal's stream mapping); a mapping without any (the inbound
    # queue -> EngineAnswersFunction) is configuration only
    "AWS::Lambda::EventSourceMapping": lambda p: "FilterCriteria" not in p or refers_to_key(p.get("KmsKeyArn")),
}
# Resource types that hold no data a customer-managed key could protect (configuration, policies,
# permissions) or whose service offers no such key.
NOTHING_TO_ENCRYPT = {
    "AWS::KMS::Key", "AWS::KMS::Alias", "AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersion",  # code, no CMK option
    "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
    "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard",
    "AWS::Events::Rule",  # the sampler's schedule: configuration only
    "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage",  # no cache enabled
    "AWS::ApiGateway::Account",
    "AWS::Cognito::UserPool", "AWS::Cognito::UserPoolResourceServer", "AWS::Cognito::UserPoolDomain",
    "AWS::Cognito::UserPoolClient",
    # two Regions' traffic steering: DNS records, a health check on an alarm, the API's custom domain
    "AWS::Route53::HealthCheck", "AWS::Route53::RecordSet", "AWS::ApiGateway::DomainName",
    "AWS::ApiGateway::BasePathMapping",
    # The console (issue 14): CDN configuration and the people's groups (names and descriptions).
    "AWS::CloudFront::Distribution", "AWS::CloudFront::OriginAccessControl", "AWS::CloudFront::ResponseHeadersPolicy",
    "AWS::Cognito::UserPoolGroup",
}
# Buckets encrypted with SSE-S3 instead of the key, and why (template.yaml gives the reason at length).
SSE_S3_BUCKETS = {
    # the console's own static files, no payment data; CloudFront's origin access control would need
    # kms:Decrypt on the payment key for every viewer request
    "ConsoleSiteBucket",
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
    if resource_type == "AWS::S3::Bucket":
        for lid in SSE_S3_BUCKETS:
            (rule,) = found.pop(lid)["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}, lid
    not_encrypted = [lid for lid, r in found.items() if not ENCRYPTED_WITH_THE_KEY[resource_type](r["Properties"])]
    assert not not_encrypted, f"{resource_type} not encrypted with {KEY}: {not_encrypted}"


def test_the_key_rotates_and_serves_logs_and_alarms(cfn):
    key = cfn["Resources"][KEY]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals = {json.dumps(s["Principal"], sort_keys=True) for s in flatten_statements(key["KeyPolicy"]["Statement"])}
    assert any("logs." in p for p in principals), "CloudWatch Logs must be able to use the key (encrypted log groups)"
    assert any("cloudwatch.amazonaws.com" in p for p in principals), "alarms publish to a KMS-encrypted topic"
    assert any("cloudtrail.amazonaws.com" in p for p in principals), "the archive's access trail is encrypted with the key"


def test_every_resource_kind_the_design_names_exists(cfn):
    for resource_type in ("AWS::DynamoDB::GlobalTable", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SNS::Topic",
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
#
# Every policy statement of the translated template (the roles SAM generates, SAM policy templates as
# expanded, IAM policies, and the resource policies of the key, buckets, queues and topics) is read,
# conditional statements (Fn::If) on both branches. Facts about actions come from the Service
# Authorization Reference as policy_sentry bundles it (offline): whether an action exists and which
# resource types it accepts.

# AWS-managed policies SAM or the template attach, and why each is acceptable. Their documents are read
# from moto's copy of AWS's managed policies: none may hold a wildcard action.
ALLOWED_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole":
        "SAM attaches it to every function role it generates: the function's own log streams (its "
        "Resource '*' is AWS's; the functions log to their own KMS-encrypted log groups)",
    "AWSXrayWriteOnlyAccess":
        "SAM attaches it for Tracing: Active; X-Ray's write actions accept no resource but '*'",
    "service-role/AWSLambdaVPCAccessExecutionRole":
        "SAM attaches it whenever VpcConfig is present (Globals, FunctionSubnetIds); without a VPC the "
        "FunctionsWithoutVpcManageNoNetworkInterfaces policy denies its network-interface actions",
    "service-role/AmazonAPIGatewayPushToCloudWatchLogs":
        "API Gateway's account-level logging role (ConfigureApiGatewayLogsRole)",
}
TEMPLATE_TEXT = TEMPLATE.read_text()


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def flatten_statements(value) -> list[dict]:
    """A policy's statements with every Fn::If expanded to both of its branches (AWS::NoValue dropped)."""
    found = []
    for item in _as_list(value):
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            _, when_true, when_false = item["Fn::If"]
            found += flatten_statements(when_true) + flatten_statements(when_false)
        elif item != {"Ref": "AWS::NoValue"}:
            found.append(item)
    return found


@functools.cache
def accepted_resources(action: str) -> tuple[str, ...] | None:
    """The resource ARN formats an action accepts ("*" when it supports no resource-level permission),
    or None when the Service Authorization Reference has no such action."""
    service, _, name = action.partition(":")
    entries = get_action_data(service, name).get(service) or []
    formats = tuple(e["resource_arn_format"] for e in entries if e["action"].lower() == action.lower())
    return formats or None


def justification_of(sid: str, template_text: str = TEMPLATE_TEXT) -> str:
    """The comments the template carries for the statement with this Sid: the comment lines right above
    its `- Sid:` line and those inside the statement. Empty when the Sid is absent or not unique."""
    lines = template_text.splitlines()
    places = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*-?\s*Sid:\s*" + re.escape(sid) + r"\s*", line)]
    if len(places) != 1:
        return ""
    start = places[0]
    indent = len(lines[start]) - len(lines[start].lstrip(" -"))
    comments = []
    above = start - 1
    while above >= 0 and lines[above].strip().startswith("#"):
        comments.insert(0, lines[above].strip("# "))
        above -= 1
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip(" ")) < indent:
            break
        if line.strip().startswith("#"):
            comments.append(line.strip("# "))
    return " ".join(comments)


def policy_findings(statements: list[dict], where: str, *, identity_policy: bool,
                    template_text: str = TEMPLATE_TEXT) -> list[str]:
    """What is too broad or wrong in a policy's Allow statements:
    - an action with `*` anywhere (`*`, `s3:*`, `kms:Get*`), NotAction, or an action the Service
      Authorization Reference does not know (a typo grants nothing and hides a missing permission);
    - in identity policies: NotResource, and Resource "*" unless every action of the statement accepts no
      resource but "*" and the template justifies the statement in a comment at its Sid.
    Deny statements only narrow, and a resource policy's Resource "*" is the resource itself."""
    found = []
    for statement in flatten_statements(statements):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            found.append(f"{where}: NotAction in an Allow")
        actions = _as_list(statement.get("Action", []))
        for action in actions:
            if not isinstance(action, str) or "*" in action:
                found.append(f"{where}: wildcard action {action!r}")
            elif accepted_resources(action) is None:
                found.append(f"{where}: unknown action {action!r}")
        if not identity_policy:
            continue
        if "NotResource" in statement:
            found.append(f"{where}: NotResource in an Allow")
        if "*" in _as_list(statement.get("Resource", [])):
            scoped = [a for a in actions if isinstance(a, str) and accepted_resources(a) not in (None, ("*",))]
            if scoped:
                found.append(f"{where}: Resource '*' for {scoped}, which accept narrower resources")
            reason = justification_of(statement.get("Sid", ""), template_text)
            if len(reason.split()) < 6:
                found.append(f"{where}: Resource '*' in statement {statement.get('Sid')!r} without a justifying "
                             "comment at its Sid in template.yaml")
    return found


def identity_statements(cfn: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for lid, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            found[lid] = [s for p in flatten_statements(props.get("Policies", []))
                          for s in flatten_statements(p["PolicyDocument"]["Statement"])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found[lid] = flatten_statements(props["PolicyDocument"]["Statement"])
    return found


RESOURCE_POLICIES = {
    "AWS::KMS::Key": "KeyPolicy", "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument", "AWS::SNS::TopicPolicy": "PolicyDocument",
}


def resource_statements(cfn: dict) -> dict[str, list[dict]]:
    return {lid: flatten_statements(res["Properties"][RESOURCE_POLICIES[res["Type"]]]["Statement"])
            for lid, res in cfn["Resources"].items() if res["Type"] in RESOURCE_POLICIES}


JUSTIFIED = """
          # Log delivery actions accept no resource but "*" (Service Authorization Reference).
          - Sid: Delivery
            Effect: Allow
"""


def test_the_policy_check_catches_broad_unknown_and_unjustified_statements():
    def findings(statement, identity_policy=True, text=JUSTIFIED):
        return policy_findings([dict({"Effect": "Allow", "Resource": "arn"}, **statement)], "x",
                               identity_policy=identity_policy, template_text=text)

    assert findings({"Action": "dynamodb:*"})
    assert findings({"Action": ["*"]})
    assert findings({"Action": "kms:Get*"}, identity_policy=False)  # a wildcard inside a name, key policy too
    assert findings({"Action": "dynamodb:GetItems"})  # no such action
    assert findings({"NotAction": "iam:CreateUser"})
    assert findings({"Action": "s3:GetObject", "Resource": "*"})  # S3 objects have ARNs
    assert findings({"Action": "logs:CreateLogDelivery", "Resource": "*", "Sid": "Delivery"}, text="- Sid: Delivery")
    assert findings({"Action": "logs:CreateLogDelivery", "Resource": "*", "Sid": "Other"})
    assert not findings({"Action": "logs:CreateLogDelivery", "Resource": "*", "Sid": "Delivery"})
    assert not findings({"Action": "kms:Decrypt", "Resource": "*"}, identity_policy=False)  # the key itself
    assert not policy_findings([{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}], "x", identity_policy=True)
    # A conditional statement is checked on both branches.
    conditional = {"Fn::If": ["C", {"Effect": "Allow", "Action": "sqs:*", "Resource": "arn"}, {"Ref": "AWS::NoValue"}]}
    assert policy_findings([conditional], "x", identity_policy=True)


def test_no_iam_statement_has_a_wildcard_action_or_an_unjustified_resource_star(cfn):
    roles = resources_of(cfn, "AWS::IAM::Role")
    # The SAM policy templates (LambdaInvokePolicy) are expanded: the state machine roles have them inline.
    for machine_role, invoked in (("PaymentStateMachineRole", 2), ("PaymentFlowRole", 5)):
        machine_statements = identity_statements(cfn)[machine_role]
        assert len([s for s in machine_statements if "lambda:InvokeFunction" in _as_list(s["Action"])]) == invoked
    assert {"ApiFunctionRole", "ValidateFunctionRole", "ParkFunctionRole", "DecisionTimeoutFunctionRole",
            "SendFunctionRole", "SettleFunctionRole", "SamplerFunctionRole", "HealthFunctionRole",
            "RecoveryFunctionRole", "PaymentStateMachineRole",
            "PaymentFlowRole"} <= set(roles)
    checked = 0
    findings = []
    for lid, statements in identity_statements(cfn).items():
        findings += policy_findings(statements, lid, identity_policy=True)
        checked += len(statements)
    for lid, statements in resource_statements(cfn).items():
        findings += policy_findings(statements, lid, identity_policy=False)
        checked += len(statements)
    assert not findings, "\n".join(findings)
    assert checked >= 40, checked  # the roles, the guard, the key and resource policies were all read
    # The key policy's conditional CloudTrail statements were among them.
    assert "CloudTrailEncryptsTheArchiveAccessTrail" in {s.get("Sid") for s in resource_statements(cfn)["PaymentKey"]}


def _managed_policy_name(arn) -> str:
    text = arn if isinstance(arn, str) else arn["Fn::Sub"]
    return re.sub(r"^arn:[^:]+:iam::aws:policy/", "", text.replace("${AWS::Partition}", "aws"))


def managed_policy_document(name: str) -> dict:
    """AWS's managed policy as moto carries it (its path stripped from the name)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)[name.rsplit("/", 1)[-1]]["Document"]


def test_only_narrow_aws_managed_policies_are_attached(cfn):
    attached = set()
    for lid, role in resources_of(cfn, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            name = _managed_policy_name(arn)
            assert name in ALLOWED_MANAGED_POLICIES, f"{lid} attaches {arn}"
            attached.add(name)
    assert attached >= {"service-role/AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}
    for name in attached:
        statements = managed_policy_document(name)["Statement"]
        wildcards = [a for s in statements for a in _as_list(s["Action"]) if "*" in a]
        assert statements and not wildcards, (name, wildcards)


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
    assert len(function_roles) == 14
    # Only the Send step releases payments; the return leg's steps forward recalls to the same queue (in the
    # payment's message group, after it): their only SendMessage is the ForwardRecalls statement; the health
    # function sends its probe to its own queue only; the journal reports its failed batches to its own
    # queue. Only the API redrives.
    senders = {r for r in function_roles if "sqs:SendMessage" in actions[r]}
    assert senders == {"SendFunctionRole", "RecallFunctionRole", "SettleFunctionRole", "EngineAnswersFunctionRole",
                       "ApiFunctionRole", "HealthFunctionRole", "JournalFunctionRole"}
    for role in senders - {"SendFunctionRole", "HealthFunctionRole", "JournalFunctionRole"}:
        sending = [st for st in statements[role] if "sqs:SendMessage" in _as_list(st["Action"])]
        assert [(st["Sid"].endswith("ForwardRecalls"), st["Resource"]) for st in sending] == [
            (True, {"Fn::GetAtt": ["ReleaseQueue", "Arn"]})], role
    journal_sends = [s["Resource"] for s in statements["JournalFunctionRole"] if "sqs:SendMessage" in _as_list(s["Action"])]
    assert journal_sends == [{"Fn::GetAtt": ["JournalFailureQueue", "Arn"]}]
    # The journal writes under journal/ only and reads nothing of the archive.
    journal_puts = [s["Resource"] for s in statements["JournalFunctionRole"] if "s3:PutObject" in _as_list(s["Action"])]
    assert journal_puts == [{"Fn::Sub": "${ArchiveBucket.Arn}/journal/*"}]
    assert not actions["JournalFunctionRole"] & {"s3:GetObject", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    health_sends = [s["Resource"] for s in statements["HealthFunctionRole"] if "sqs:SendMessage" in _as_list(s["Action"])]
    assert health_sends == [{"Fn::GetAtt": ["HealthProbeQueue", "Arn"]}]
    assert [r for r in function_roles if "states:RedriveExecution" in actions[r]] == ["ApiFunctionRole"]
    # PaymentFlow is started by the API (a new or approved payment) and by the anchor's wait (a stage to
    # resume); the anchor's wait is answered by the API (reject, cancel; a failed start) and by a wait
    # that finds its payment finished.
    # A message with several transactions: the API starts its split, the split starts its payments' flows.
    assert {r for r in function_roles if "states:StartExecution" in actions[r]} == {
        "ApiFunctionRole", "ParkFunctionRole", "HealthFunctionRole", "RecoveryFunctionRole", "SplitFunctionRole"}
    split_starts = [s["Resource"] for s in statements["SplitFunctionRole"] if "states:StartExecution" in _as_list(s["Action"])]
    assert split_starts == [_named_machine(cfn, "PaymentFlow")]
    # Two Regions (docs/regions.md): the health function starts its probe and the recovery workflow, the
    # recovery's task only the new anchors of the payments it took over.
    assert {s["Resource"]["Fn::Sub"].split(":stateMachine:")[1] for s in statements["HealthFunctionRole"]
            if "states:StartExecution" in _as_list(s["Action"])} == {"${AWS::StackName}-health-probe",
                                                                        "${AWS::StackName}-recovery"}
    assert [s["Resource"] for s in statements["RecoveryFunctionRole"]
            if "states:StartExecution" in _as_list(s["Action"])] == [_named_machine(cfn, "PaymentStateMachine")]
    # ... and by a recall that cancels a waiting payment (the Recall step)
    assert {r for r in function_roles if "states:SendTaskSuccess" in actions[r]} == {"ApiFunctionRole", "ParkFunctionRole",
                                                                                   "RecallFunctionRole"}
    assert {r for r in function_roles if "states:SendTaskFailure" in actions[r]} == {"ApiFunctionRole"}
    park = [s for s in statements["ParkFunctionRole"] if "states:SendTaskSuccess" in _as_list(s["Action"])]
    assert [s["Resource"] for s in park] == [_named_machine(cfn, "PaymentStateMachine")]
    start = [s for s in statements["ParkFunctionRole"] if "states:StartExecution" in _as_list(s["Action"])]
    assert [s["Resource"] for s in start] == [_named_machine(cfn, "PaymentFlow")]
    # Nobody deletes payment records or scans the table; the sampler only reads.
    for role in function_roles:
        assert not actions[role] & {"dynamodb:DeleteItem", "dynamodb:Scan", "s3:DeleteObject",
                                    "dynamodb:TransactWriteItems"}, role
        if role != "PeopleTokenFunctionRole":
            assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions[role], role
    # The console's Cognito trigger answers the event it gets: no AWS call but decrypting its environment.
    assert actions["PeopleTokenFunctionRole"] == {"kms:Decrypt"}
    # The sampler writes no payment record: its one write is the console's counters, a PutItem of the
    # summary item of its own Region and no other key (mxflow/queries.py, save_summary).
    assert not actions["SamplerFunctionRole"] & {"dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "s3:PutObject"}
    sampler_puts = [s for s in statements["SamplerFunctionRole"] if "dynamodb:PutItem" in _as_list(s["Action"])]
    assert [(_as_list(s["Action"]), s["Condition"]) for s in sampler_puts] == [
        (["dynamodb:PutItem"], {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [{"Fn::Sub": "summary#${AWS::Region}"}]}})]
    # Only the API writes received messages; the steps read them and write generated ones only.
    received = {r for r in function_roles for s in statements[r] if "s3:PutObject" in _as_list(s["Action"])
                and "received/" in json.dumps(s["Resource"])}
    assert received == {"ApiFunctionRole"}
    # The state machines invoke exactly their steps' functions, never the API function.
    assert _invoked_functions(statements["PaymentFlowRole"]) == {"ValidateFunction", "ParkFunction", "SendFunction",
                                                                  "SettleFunction", "RecallFunction"}
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
    table = cfn["Resources"]["PaymentTable"]
    assert table["Type"] == "AWS::DynamoDB::GlobalTable"   # docs/regions.md: one replica per Region
    props = table["Properties"]
    assert props["Replicas"][0]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    peer = props["Replicas"][1]["Fn::If"]
    assert peer[0] == "TwoRegions" and peer[1]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["MultiRegionConsistency"] == {"Fn::If": ["TwoRegions", {"Ref": "TableConsistency"}, {"Ref": "AWS::NoValue"}]}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}  # the archive journal's source
    # MRSC (STRONG) supports no TTL: the TTL exists unless the table is strongly consistent.
    assert props["TimeToLiveSpecification"] == {"Fn::If": ["UseTimeToLive", {"AttributeName": "expiresAt", "Enabled": True},
                                                           {"Ref": "AWS::NoValue"}]}
    indexes = {gsi["IndexName"]: gsi for gsi in props["GlobalSecondaryIndexes"]}
    assert {name: [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] for name, gsi in indexes.items()} == {
        "InFlight": [("inflight", "HASH"), ("receivedAt", "RANGE")],
        "ByClient": [("clientId", "HASH"), ("receivedAt", "RANGE")],
        "Suspended": [("suspendedIn", "HASH"), ("suspendedAt", "RANGE")],
        # the console's search by end-to-end id (issue 14): its key written once, at creation
        "ByEndToEndId": [("endToEndKey", "HASH"), ("receivedAt", "RANGE")],
        "ByReference": [("matchKey", "HASH"), ("receivedAt", "RANGE")],          # written once, at creation
        "EngineSuspense": [("suspenseListIn", "HASH"), ("receivedAt", "RANGE")]}  # answer items of their own
    # KEYS_ONLY on keys written when a payment enters or leaves the index: a status change writes none. The
    # suspense list's entries are items of their own, written once: it carries what the list shows.
    suspense = indexes.pop("EngineSuspense")["Projection"]
    assert {gsi["Projection"]["ProjectionType"] for gsi in indexes.values()} == {"KEYS_ONLY"}
    assert suspense["ProjectionType"] == "INCLUDE"
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
    # a stream mapping's on-failure destination is a dead-letter queue too (the journal's failed batches)
    dlqs |= {m["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
             for m in resources_of(cfn, "AWS::Lambda::EventSourceMapping").values() if "DestinationConfig" in m["Properties"]}
    assert dlqs, "no dead-letter queue"
    # The health probe's queue is never read (its messages expire after 60 s): nothing can fail there to
    # go to a DLQ. Checked: no role may receive from it.
    never_read = {"HealthProbeQueue"}
    assert queues["HealthProbeQueue"]["Properties"]["MessageRetentionPeriod"] == 60
    assert not [lid for lid, st in identity_statements(cfn).items() for s in st
                if "sqs:ReceiveMessage" in _as_list(s["Action"]) and "HealthProbeQueue" in json.dumps(s["Resource"])]
    assert set(queues) - dlqs - never_read == {lid for lid, q in queues.items() if "RedrivePolicy" in q["Properties"]}, \
        "a queue that is not a DLQ has no RedrivePolicy"
    alarms = resources_of(cfn, "AWS::CloudWatch::Alarm").values()
    for dlq in dlqs:
        assert any(a["Properties"]["Namespace"] == "AWS/SQS"
                   and a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
                   and {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}} in a["Properties"]["Dimensions"]
                   and a["Properties"]["Threshold"] == 0 and a["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
                   for a in alarms), f"no depth > 0 alarm on {dlq}"


# the REST API's Lambda proxy waits for the answer; so does Cognito for its triggers (the console's)
SYNCHRONOUS_PRINCIPALS = {"apigateway.amazonaws.com", "cognito-idp.amazonaws.com"}


def _functions_referred(value, functions: set[str]) -> set[str]:
    return references_of(value) & functions


def _task_states(states: dict):
    for state in states.values():
        yield state
        for branch in state.get("Branches", []):
            yield from _task_states(branch["States"])
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _task_states(state[key]["States"])


def asynchronous_invokers(cfn: dict, definitions: dict[str, dict]) -> dict[str, list[str]]:
    """Functions some service invokes asynchronously (where a failed invocation is retried twice and then
    dropped unless the function has a DLQ or an on-failure destination), each with what invokes it.

    Covers resource-based permissions for any service but API Gateway (EventBridge rules, SNS, S3, ...),
    EventBridge Scheduler schedules (which invoke through a role, with no permission), SNS subscriptions,
    S3 notifications and state machine tasks that call lambda:invoke with InvocationType Event.
    `definitions` maps each state machine's logical id to its ASL definition."""
    functions = set(resources_of(cfn, "AWS::Lambda::Function"))
    found: dict[str, list[str]] = {}

    def add(targets: set[str], how: str) -> None:
        for target in targets:
            found.setdefault(target, []).append(how)

    for lid, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        kind = res["Type"]
        if kind == "AWS::Lambda::Permission" and props.get("Principal") not in SYNCHRONOUS_PRINCIPALS:
            add(_functions_referred(props.get("FunctionName"), functions), f"{lid} ({props.get('Principal')})")
        elif kind == "AWS::Events::Rule":
            add(_functions_referred([t["Arn"] for t in props.get("Targets", [])], functions), f"{lid} (EventBridge rule)")
        elif kind == "AWS::Scheduler::Schedule":
            add(_functions_referred(props.get("Target", {}).get("Arn"), functions), f"{lid} (EventBridge Scheduler)")
        elif kind == "AWS::SNS::Subscription" and props.get("Protocol") == "lambda":
            add(_functions_referred(props.get("Endpoint"), functions), f"{lid} (SNS)")
        elif kind == "AWS::S3::Bucket":
            configs = props.get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
            add(_functions_referred([c.get("Function") for c in configs], functions), f"{lid} (S3 notification)")
        elif kind == "AWS::StepFunctions::StateMachine" and lid in definitions:
            substitutions = props.get("DefinitionSubstitutions", {})
            for state in _task_states(definitions[lid]["States"]):
                parameters = state.get("Parameters") or state.get("Arguments") or {}
                if state.get("Type") == "Task" and parameters.get("InvocationType") == "Event":
                    target = str(parameters.get("FunctionName") or parameters.get("FunctionName.$") or "")
                    values = [substitutions.get(name) for name in PLACEHOLDER.findall(target)]
                    add(_functions_referred(values, functions), f"{lid} (asynchronous lambda:invoke)")
    return found


def with_failure_destination(cfn: dict) -> set[str]:
    """Functions with a dead-letter queue or an on-failure destination for asynchronous invocations."""
    found = {lid for lid, f in resources_of(cfn, "AWS::Lambda::Function").items() if f["Properties"].get("DeadLetterConfig")}
    for config in resources_of(cfn, "AWS::Lambda::EventInvokeConfig").values():
        if config["Properties"].get("DestinationConfig", {}).get("OnFailure"):
            found |= references_of(config["Properties"]["FunctionName"])
    return found


ASYNC_EXAMPLES = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: python3.13, Handler: app.handler}
Resources:
  Topic: {Type: AWS::SNS::Topic}
  Failures: {Type: AWS::SQS::Queue}
  Scheduled:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Events: {Every: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}}
  ScheduledV2:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Events: {Every: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(1 minute)}}}
  OnTopicWithDlq:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt Failures.Arn}
      Events: {Published: {Type: SNS, Properties: {Topic: !Ref Topic}}}
  ScheduledWithDestination:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}}}
      Events: {Every: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}}
  FireAndForget:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: fn/}
  Synchronous:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: fn/}
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: machine.asl.json
      DefinitionSubstitutions:
        NotifyArn: !GetAtt FireAndForget.Arn
        StepArn: !GetAtt Synchronous.Arn
      Policies: []
"""
ASYNC_EXAMPLE_MACHINE = {"StartAt": "Step", "States": {
    "Step": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Fan",
             "Parameters": {"FunctionName": "${StepArn}", "Payload.$": "$"}},
    "Fan": {"Type": "Parallel", "End": True, "Branches": [{"StartAt": "Notify", "States": {
        "Notify": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True,
                   "Parameters": {"FunctionName": "${NotifyArn}", "InvocationType": "Event", "Payload.$": "$"}}}}]}}}


def test_the_asynchronous_invocation_check_finds_schedules_topics_and_fire_and_forget_tasks(tmp_path):
    (tmp_path / "template.yaml").write_text(ASYNC_EXAMPLES)
    example = load_template(tmp_path / "template.yaml", region="us-east-1", account_id="123456789012",
                            stack_name="example").cfn
    found = asynchronous_invokers(example, {"Machine": ASYNC_EXAMPLE_MACHINE})
    assert set(found) == {"Scheduled", "ScheduledV2", "OnTopicWithDlq", "ScheduledWithDestination", "FireAndForget"}
    assert set(found) - with_failure_destination(example) == {"Scheduled", "ScheduledV2", "FireAndForget"}


def test_asynchronously_invoked_functions_have_a_failure_destination(cfn, asl, flow_asl):
    """A function that some service invokes asynchronously loses events after its retries unless it has a
    DLQ or an on-failure destination; the checkov skips of CKV_AWS_116 (Lambda DLQ) claim that a function
    is invoked synchronously only: both are checked here."""
    found = asynchronous_invokers(cfn, {"PaymentStateMachine": asl, "PaymentFlow": flow_asl})
    # their schedules; every other function is invoked synchronously
    assert set(found) == {"SamplerFunction", "HealthFunction"}
    missing = set(found) - with_failure_destination(cfn)
    assert not missing, f"asynchronously invoked without a DLQ or on-failure destination: { {f: found[f] for f in missing} }"
    claimed_synchronous = {lid for lid, skips in checkov_skips(cfn).items() if "CKV_AWS_116" in skips}
    assert claimed_synchronous, "no function skips CKV_AWS_116: the skip check below checked nothing"
    assert not claimed_synchronous & set(found), {f: found[f] for f in claimed_synchronous & set(found)}
    # What was inspected: the API's permissions (synchronous) and the state machine's tasks.
    assert {p["Properties"]["Principal"] for p in resources_of(cfn, "AWS::Lambda::Permission").values()} >= SYNCHRONOUS_PRINCIPALS


# --------------------------------------------------------------------------------------------------
# checkov's findings that are deliberate (make security runs checkov and fails on any other), the
# optional VPC, reserved concurrency and the archive's access trail

# Each check the template may skip, and the decision behind it (the reasons are in the template).
CHECKOV_DECISIONS = {
    "CKV_AWS_116": "Lambda DLQ: only asynchronously invoked functions need one (checked above)",
    "CKV_AWS_120": "API Gateway caching: a payment API must not cache",
    "CKV_AWS_18": "S3 server access logs: the archive is audited by CloudTrail data events instead",
    "CKV_AWS_67": "multi-Region trail: this trail records one Region's archive bucket",
    # The console (issue 14)
    "CKV_AWS_145": "S3 KMS encryption: the console's static files use SSE-S3 (SSE_S3_BUCKETS)",
    "CKV_AWS_68": "CloudFront WAF: static files, and /v1/* is the API any client reaches directly",
    "CKV_AWS_86": "CloudFront access logs: need an ACL-enabled bucket; the API logs its own calls",
    "CKV_AWS_174": "CloudFront TLS minimum: fixed by CloudFront for its default certificate",
    "CKV_AWS_310": "CloudFront origin failover: one Region's site, like its stack",
    "CKV_AWS_374": "CloudFront geo restriction: the operator's policy, not the template's",
}


def checkov_skips(template: dict) -> dict[str, dict[str, str]]:
    """{logical id: {check id: reason}} from each resource's Metadata.checkov.skip."""
    found = {}
    for lid, res in template["Resources"].items():
        entries = ((res.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
        if entries:
            found[lid] = {e["id"]: e.get("comment", "") for e in entries}
    return found


def test_every_checkov_skip_is_a_known_decision_with_its_reason(sam):
    skips = checkov_skips(sam)
    for lid, checks in skips.items():
        for check, reason in checks.items():
            assert check in CHECKOV_DECISIONS, f"{lid} skips {check}: decide it here, with its reason in the template"
            assert len(reason.split()) >= 10, f"{lid} skips {check} without a reason"
    functions = {lid for lid, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert {lid for lid, checks in skips.items() if "CKV_AWS_116" in checks} == {
        lid for lid in functions if not sam["Resources"][lid]["Properties"].get("DeadLetterQueue")}
    assert set(skips) - functions == {"PaymentApi", "ArchiveBucket", "AuditTrailBucket", "ArchiveAccessTrail",
                                      "ConsoleSiteBucket", "ConsoleDistribution"}
    # The checks fixed in the template instead of skipped: VPC and reserved concurrency (parameters).
    assert not {check for checks in skips.values() for check in checks} & {"CKV_AWS_115", "CKV_AWS_117"}


def resolver_for(loaded) -> Resolver:
    """Conditions and intrinsic functions evaluated with the loaded parameters; resources by logical id."""
    return Resolver(loaded.cfn, loaded.parameters, resource_ref=lambda lid: lid,
                    resource_attr=lambda lid, attribute: f"{lid}.{attribute}")


def loaded_with(**overrides):
    return load_template(TEMPLATE, parameter_overrides=overrides, region="us-east-1", account_id="123456789012",
                         stack_name="mxflow")


FUNCTION_ROLES = {"ApiFunctionRole", "ValidateFunctionRole", "ParkFunctionRole", "DecisionTimeoutFunctionRole",
                  "SendFunctionRole", "SettleFunctionRole", "SamplerFunctionRole", "HealthFunctionRole",
                  "RecoveryFunctionRole", "RecallFunctionRole", "EngineAnswersFunctionRole", "SplitFunctionRole",
                  "JournalFunctionRole", "PeopleTokenFunctionRole"}
VPC_ACCESS = "service-role/AWSLambdaVPCAccessExecutionRole"


def test_functions_run_outside_a_vpc_by_default_and_get_no_network_interface_permissions(cfn):
    loaded = loaded_with()
    resolver = resolver_for(loaded)
    functions = resources_of(loaded.cfn, "AWS::Lambda::Function")
    assert all(resolver.resolve(f["Properties"]["VpcConfig"]) is NO_VALUE for f in functions.values())
    # aws-sam-translator attaches the VPC managed policy to every role anyway (Fn::If is opaque to it) ...
    roles = resources_of(loaded.cfn, "AWS::IAM::Role")
    assert {lid for lid, r in roles.items()
            if VPC_ACCESS in map(_managed_policy_name, r["Properties"].get("ManagedPolicyArns", []))} == FUNCTION_ROLES
    # ... so a policy that exists exactly when there is no VPC denies every network-interface action it grants.
    guard = loaded.cfn["Resources"]["FunctionsWithoutVpcManageNoNetworkInterfaces"]
    assert guard["Condition"] == "NoFunctionVpc" and resolver.condition("NoFunctionVpc") is True
    assert {ref["Ref"] for ref in guard["Properties"]["Roles"]} == {f"{lid}Role" for lid in functions} == FUNCTION_ROLES
    denied = {a for s in guard["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
              and s["Resource"] == "*" for a in _as_list(s["Action"])}
    granted = {a for s in managed_policy_document(VPC_ACCESS)["Statement"] for a in _as_list(s["Action"])}
    assert {a for a in granted if a.startswith("ec2:")} <= denied and denied


def test_an_operator_puts_the_functions_in_a_vpc_with_two_parameters():
    loaded = loaded_with(FunctionSubnetIds="subnet-0a1b2c3d,subnet-4e5f6a7b", FunctionSecurityGroupIds="sg-0123abcd")
    resolver = resolver_for(loaded)
    for lid, function in resources_of(loaded.cfn, "AWS::Lambda::Function").items():
        assert resolver.resolve(function["Properties"]["VpcConfig"]) == {
            "SubnetIds": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"], "SecurityGroupIds": ["sg-0123abcd"]}, lid
    assert resolver.condition("NoFunctionVpc") is False  # the deny guard is not created: ENIs allowed


def test_reserved_concurrency_is_off_by_default_and_a_parameter():
    default = loaded_with()
    capped = loaded_with(FunctionReservedConcurrency="40")
    for loaded, expected in ((default, NO_VALUE), (capped, "40")):
        resolver = resolver_for(loaded)
        functions = resources_of(loaded.cfn, "AWS::Lambda::Function")
        assert len(functions) == 14
        for lid, function in functions.items():
            assert resolver.resolve(function["Properties"]["ReservedConcurrentExecutions"]) == expected, lid


TRAIL_ARN = "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/"


def test_every_read_and_write_of_the_archive_is_recorded_by_a_tamper_evident_encrypted_trail(cfn, sam):
    assert sam["Parameters"]["AuditArchiveAccess"]["Default"] == "true"
    trail = cfn["Resources"]["ArchiveAccessTrail"]
    props = trail["Properties"]
    assert trail["Condition"] == "UseArchiveAccessTrail"
    assert props["IsLogging"] is True and props["EnableLogFileValidation"] is True
    assert refers_to_key(props["KMSKeyId"]) and props["S3BucketName"] == {"Ref": "AuditTrailBucket"}
    (selector,) = props["AdvancedEventSelectors"]
    fields = {f["Field"]: f for f in selector["FieldSelectors"]}
    assert fields["eventCategory"]["Equals"] == ["Data"]
    assert fields["resources.type"]["Equals"] == ["AWS::S3::Object"]
    assert fields["resources.ARN"]["StartsWith"] == [{"Fn::Sub": "${ArchiveBucket.Arn}/"}]
    assert "readOnly" not in fields  # reads and writes
    # The bucket and key policies let exactly this trail in: its ARN, built from its name.
    trail_arn = {"Fn::Sub": TRAIL_ARN + props["TrailName"]["Fn::Sub"]}
    bucket_policy = resource_statements(cfn)["AuditTrailBucketPolicy"]
    key_policy = resource_statements(cfn)["PaymentKey"]
    for statement in [s for s in bucket_policy + key_policy if s.get("Principal") == {"Service": "cloudtrail.amazonaws.com"}]:
        assert statement["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn, statement["Sid"]
    assert {s["Action"] for s in bucket_policy if s["Effect"] == "Allow"} == {"s3:GetBucketAcl", "s3:PutObject"}
    assert {s["Action"] for s in key_policy if s.get("Principal") == {"Service": "cloudtrail.amazonaws.com"}} == {
        "kms:GenerateDataKey", "kms:DescribeKey"}
    # The trail's own bucket keeps deleted or overwritten log files as long as the trail.
    (rule,) = cfn["Resources"]["AuditTrailBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert cfn["Resources"]["AuditTrailBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert rule["ExpirationInDays"] == rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == {"Ref": "AuditTrailRetentionDays"}


def test_the_trail_can_be_left_to_an_organization_trail():
    loaded = loaded_with(AuditArchiveAccess="false")
    resolver = resolver_for(loaded)
    assert resolver.condition("UseArchiveAccessTrail") is False
    conditional = {lid for lid, r in loaded.cfn["Resources"].items() if r.get("Condition") == "UseArchiveAccessTrail"}
    assert conditional == {"AuditTrailBucket", "AuditTrailBucketPolicy", "ArchiveAccessTrail"}
    key_policy = resolver.resolve(loaded.cfn["Resources"]["PaymentKey"]["Properties"]["KeyPolicy"])
    assert not [s for s in key_policy["Statement"] if "cloudtrail" in json.dumps(s.get("Principal"))]


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
    ("/messages/{messageId}", "get"): ["payments/read"],
    ("/messages/{messageId}/messages/{name}", "get"): ["payments/read"],
    ("/payments", "get"): ["payments/read"],   # the console's reads (issue 14)
    ("/payments/{id}/execution", "get"): ["payments/read"],
    ("/reason-codes", "get"): ["payments/read"],
    ("/regions", "get"): ["payments/operate"],
    ("/regions/{region}/recover", "post"): ["payments/operate"],
    ("/engine/messages", "post"): ["payments/engine"],   # the payment engine's own client only
    ("/engine/suspense", "get"): ["payments/operate"],
    ("/health", "get"): None,
    ("/openapi.json", "get"): None,
}


@pytest.fixture(scope="module")
def openapi(cfn) -> dict:
    (api,) = resources_of(cfn, "AWS::ApiGateway::RestApi").values()
    return api["Properties"]["Body"]


def test_every_route_has_its_scope_except_health_and_the_openapi_document(openapi):
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
    assert defined == used == {"payments/submit", "payments/read", "payments/decide", "payments/operate",
                               "payments/engine"}
    client, engine = (cfn["Resources"][name]["Properties"] for name in ("ApiClient", "EngineClient"))
    for app in (client, engine):
        assert app["GenerateSecret"] is True and app["AllowedOAuthFlows"] == ["client_credentials"]
        assert app["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(client["AllowedOAuthScopes"]) == defined - {"payments/engine"}
    assert engine["AllowedOAuthScopes"] == ["payments/engine"]
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
             "SettleFunction", "SamplerFunction", "HealthFunction", "RecoveryFunction", "RecallFunction",
             "EngineAnswersFunction", "SplitFunction", "JournalFunction", "PeopleTokenFunction"}


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
        "PaymentStateMachine": "STANDARD", "PaymentFlow": "EXPRESS",
        # two Regions (docs/regions.md): the health function's one-state probe and the recovery workflow
        "HealthProbeStateMachine": "STANDARD", "RecoveryStateMachine": "STANDARD",
        "BulkSplitStateMachine": "STANDARD"}
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
    assert failed == {"PaymentStateMachine", "PaymentFlow", "BulkSplitStateMachine"}
    pending = next(a for a in alarms if a["MetricName"] == "OldestPendingAgeSeconds")
    assert pending["Threshold"] == {"Ref": "PendingAlarmThresholdSeconds"}
    stuck = next(a for a in alarms if a["MetricName"] == "OldestInFlightAgeSeconds")
    assert stuck["Threshold"] == {"Ref": "StuckAlarmThresholdSeconds"}
    # The sampler publishes every minute (zero when nothing waits): missing data means it stopped. The
    # suspended engine answers are counted when one happens: none published is none suspended.
    assert next(a for a in alarms if a["MetricName"] == "EngineAnswersSuspended")["TreatMissingData"] == "notBreaching"
    for alarm in alarms:
        if alarm["Namespace"] == "mxflow" and alarm["MetricName"] != "EngineAnswersSuspended":
            assert alarm["Dimensions"] == [{"Name": "service", "Value": "mxflow"}]  # Powertools' default dimension
            assert alarm["TreatMissingData"] == "breaching" and alarm["Period"] == 60, alarm["MetricName"]
    schedules = {s["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]: s["Properties"]["ScheduleExpression"]
                 for s in resources_of(cfn, "AWS::Events::Rule").values()}
    assert schedules == {"SamplerFunction": "rate(1 minute)", "HealthFunction": "rate(1 minute)"}
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
    assert {"ApiUrl", "UserPoolId", "ClientId", "TokenUrl", "StateMachineArn", "PaymentFlowArn", "PaymentTableName",
            "ArchiveBucketName", "ReleaseQueueUrl", "PaymentEventsTopicArn"} <= set(sam["Outputs"])
