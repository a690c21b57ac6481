"""Creating an expanded (CloudFormation) template's resources in moto, as CloudFormation would.

Each supported type has a creator that calls the service API through boto3 (answered by moto in-process)
and returns what `Ref` and `Fn::GetAtt` give for it. Physical names follow CloudFormation's pattern
(`<stack>-<LogicalId>-<SUFFIX>`) unless the template names the resource. Types that only matter in AWS
(IAM, CloudWatch alarms and dashboards, log groups, API Gateway deployment objects, Lambda permissions)
are not created: `Ref`/`GetAtt` still answer with well-formed values and a note records each skip.

Created: KMS keys and aliases; DynamoDB tables and global tables (keys, GSIs/LSIs, TTL, streams, SSE,
PITR) -- a global table is created as a table in this Region, replication is the two-Region runtime's
concern; SQS queues (FIFO, DLQ redrive policies, queue policies); SNS topics with their subscriptions;
S3 buckets (encryption, versioning, policies); Secrets Manager secrets (generated strings included); SSM
parameters; Cognito user pools, resource servers, clients and domains; Lambda functions (in moto, and
registered with the in-process runner: see lambda_runner); state machines (DefinitionUri files or inline
Definition, DefinitionSubstitutions applied); EventBridge rules (schedules go to the local scheduler,
event patterns are created in moto's EventBridge); EventBridge Scheduler schedules.
"""
from __future__ import annotations

import io
import json
import random
import string
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from mxflow_local.template import LoadedTemplate, Resolver, TemplateError, creation_order, with_dependencies

SKIPPED_TYPES_PREFIXES = ("AWS::IAM::", "AWS::CloudWatch::", "AWS::Logs::", "AWS::ApiGateway::",
                          "AWS::ApiGatewayV2::", "AWS::Lambda::Permission", "AWS::Lambda::Version",
                          "AWS::Lambda::Alias", "AWS::Lambda::EventInvokeConfig", "AWS::SNS::TopicPolicy",
                          "AWS::Route53", "AWS::Route53RecoveryControl", "AWS::Route53RecoveryReadiness",
                          "AWS::XRay::", "AWS::CloudFormation::", "AWS::SSM::Document", "AWS::Budgets::",
                          "AWS::WAFv2::", "AWS::CertificateManager::", "AWS::CloudTrail::",
                          # the deployed console (issue 14): its CDN, and the people's groups that only the
                          # hosted UI's trigger reads (locally the console is served by the API itself and
                          # signs in with a one-time link or a token from `mxflow token`)
                          "AWS::CloudFront::", "AWS::Cognito::UserPoolGroup")


@dataclass
class Created:
    ref: Any
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Schedule:
    """A scheduled invocation (EventBridge rule with ScheduleExpression, or EventBridge Scheduler)."""
    logical_id: str
    expression: str
    target_arn: str
    input: str | None
    enabled: bool = True


@dataclass
class StackRecord:
    """Everything created for one template: what the runtime and its users look up."""
    resources: dict[str, Created] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    functions: dict[str, dict] = field(default_factory=dict)     # logical id -> resolved properties
    layers: dict[str, Path] = field(default_factory=dict)        # logical id -> content dir
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    schedules: list[Schedule] = field(default_factory=list)
    event_source_mappings: list[dict] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


def physical_name(stack_name: str, logical_id: str, suffix: str, max_length: int = 64) -> str:
    """CloudFormation's generated name: <stack>-<LogicalId>-<SUFFIX>, trimmed to the service's limit."""
    head = f"{stack_name}-{logical_id}"[: max_length - len(suffix) - 1]
    return f"{head}-{suffix}"


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _is_tls_only_deny(statement: dict) -> bool:
    """A Deny whose only condition is aws:SecureTransport false (the usual TLS-only policy)."""
    condition = statement.get("Condition") or {}
    return (statement.get("Effect") == "Deny" and list(condition) == ["Bool"]
            and {k.lower(): str(v).lower() for k, v in condition["Bool"].items()} == {"aws:securetransport": "false"})


def _tiny_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.txt", "mxflow local runs the code from CodeUri in-process")
    return buffer.getvalue()


class StackBuilder:
    """Creates one stack's resources in one Region of moto."""

    def __init__(self, template: LoadedTemplate, *, region: str, account_id: str, stack_name: str,
                 client: Callable[[str], Any], suffix: str | None = None):
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.partition = template.parameters["AWS::Partition"]
        self.client = client
        self.suffix = suffix or "".join(random.choices(string.ascii_uppercase + string.digits, k=12))
        self.record = StackRecord()
        self._creators: dict[str, Callable[[str, dict], Created]] = {
            "AWS::KMS::Key": self._kms_key,
            "AWS::KMS::Alias": self._kms_alias,
            "AWS::DynamoDB::Table": self._dynamodb_table,
            "AWS::DynamoDB::GlobalTable": self._dynamodb_table,
            "AWS::SQS::Queue": self._sqs_queue,
            "AWS::SQS::QueuePolicy": self._sqs_queue_policy,
            "AWS::SNS::Topic": self._sns_topic,
            "AWS::SNS::Subscription": self._sns_subscription,
            "AWS::S3::Bucket": self._s3_bucket,
            "AWS::S3::BucketPolicy": self._s3_bucket_policy,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::SSM::Parameter": self._ssm_parameter,
            "AWS::Cognito::UserPool": self._user_pool,
            "AWS::Cognito::UserPoolResourceServer": self._resource_server,
            "AWS::Cognito::UserPoolClient": self._user_pool_client,
            "AWS::Cognito::UserPoolDomain": self._user_pool_domain,
            "AWS::Lambda::LayerVersion": self._layer,
            "AWS::Lambda::Function": self._function,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::Events::Rule": self._events_rule,
            "AWS::Scheduler::Schedule": self._scheduler_schedule,
            "AWS::Events::EventBus": self._event_bus,
        }

    # helpers
    def arn(self, service: str, resource: str, region: str | None = None, account: str | None = None) -> str:
        region = self.region if region is None else region
        account = self.account_id if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    def name_for(self, logical_id: str, max_length: int = 64) -> str:
        return physical_name(self.stack_name, logical_id, self.suffix, max_length)

    def note(self, text: str) -> None:
        self.record.notes.append(text)

    def create(self, logical_id: str, resource_type: str, properties: dict) -> Created:
        creator = self._creators.get(resource_type)
        if creator is None:
            created = self._skipped(logical_id, resource_type)
        else:
            try:
                created = creator(logical_id, properties)
            except TemplateError:
                raise
            except Exception as exc:  # noqa: BLE001 - name the resource, never a bare traceback
                raise TemplateError(f"cannot create {logical_id} ({resource_type}) locally: {exc}") from exc
        self.record.resources[logical_id] = created
        self.record.types[logical_id] = resource_type
        return created

    def _skipped(self, logical_id: str, resource_type: str) -> Created:
        if resource_type.startswith(SKIPPED_TYPES_PREFIXES):
            self.note(f"{logical_id} ({resource_type}): not created locally (only matters in AWS)")
        else:
            self.note(f"{logical_id} ({resource_type}): type not supported by the local runtime; not created")
        name = self.name_for(logical_id)
        if resource_type == "AWS::IAM::Role":
            return Created(name, {"Arn": self.arn("iam", f"role/{name}", region=""), "RoleId": name})
        if resource_type == "AWS::CloudFront::Distribution":  # no CDN locally: a name where one is asked for
            return Created(name, {"DomainName": f"{name.lower()}.cloudfront.invalid", "Id": name})
        if resource_type.startswith("AWS::CloudFront::"):
            return Created(name, {"Id": name})
        if resource_type == "AWS::ApiGateway::RestApi":
            api_id = "".join(random.Random(logical_id + self.suffix).choices(string.ascii_lowercase + string.digits, k=10))
            return Created(api_id, {"RootResourceId": "root", "RestApiId": api_id})
        return Created(name, {"Arn": self.arn(resource_type.split("::")[1].lower(), name)})

    # KMS
    def _kms_key(self, logical_id: str, props: dict) -> Created:
        args: dict[str, Any] = {"Description": props.get("Description", logical_id)}
        if props.get("KeyPolicy"):
            args["Policy"] = _stringify(props["KeyPolicy"])
        for name in ("KeySpec", "KeyUsage", "MultiRegion"):
            if name in props:
                args[name] = props[name]
        key = self.client("kms").create_key(**args)["KeyMetadata"]
        if props.get("EnableKeyRotation"):
            self.client("kms").enable_key_rotation(KeyId=key["KeyId"])
        return Created(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]})

    def _kms_alias(self, logical_id: str, props: dict) -> Created:
        self.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        return Created(props["AliasName"], {})

    # DynamoDB
    def _dynamodb_table(self, logical_id: str, props: dict) -> Created:
        name = props.get("TableName") or self.name_for(logical_id, 255)
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if args["BillingMode"] == "PROVISIONED":
            args["ProvisionedThroughput"] = props.get("ProvisionedThroughput") or {
                "ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(index_kind):
                indexes = []
                for index in props[index_kind]:
                    index = {k: v for k, v in index.items() if k not in ("ContributorInsightsSpecification",
                                                                         "WriteProvisionedThroughputSettings",
                                                                         "ReadProvisionedThroughputSettings")}
                    if index_kind == "GlobalSecondaryIndexes" and args["BillingMode"] == "PROVISIONED":
                        index.setdefault("ProvisionedThroughput", args["ProvisionedThroughput"])
                    indexes.append(index)
                args[index_kind] = indexes
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        sse = props.get("SSESpecification")
        if sse and sse.get("SSEEnabled"):
            args["SSESpecification"] = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS")}
            if sse.get("KMSMasterKeyId"):
                args["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
        if props.get("Replicas"):  # AWS::DynamoDB::GlobalTable: this Region's replica settings
            here = next((r for r in props["Replicas"] if r.get("Region") == self.region), {})
            others = [r.get("Region") for r in props["Replicas"] if r.get("Region") != self.region]
            if others:
                self.note(f"{logical_id}: global table replicas in {', '.join(map(str, others))} are not replicated by this runtime")
            if here.get("PointInTimeRecoverySpecification"):
                props = dict(props, PointInTimeRecoverySpecification=here["PointInTimeRecoverySpecification"])
        if props.get("DeletionProtectionEnabled"):
            args["DeletionProtectionEnabled"] = True
        dynamodb = self.client("dynamodb")
        table = dynamodb.create_table(**args)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl["AttributeName"]})
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and pitr.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": True})
        attrs = {"Arn": table["TableArn"]}
        if table.get("LatestStreamArn"):
            attrs["StreamArn"] = table["LatestStreamArn"]
        return Created(name, attrs)

    # SQS
    def _sqs_queue(self, logical_id: str, props: dict) -> Created:
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        name = props.get("QueueName") or self.name_for(logical_id, 80 - (5 if fifo else 0)) + (".fifo" if fifo else "")
        attributes = {k: _stringify(v) for k, v in props.items() if k not in ("QueueName", "Tags")}
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.arn("sqs", name)
        return Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _sqs_queue_policy(self, logical_id: str, props: dict) -> Created:
        for url in props.get("Queues", []):
            self.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": _stringify(props["PolicyDocument"])})
        return Created(self.name_for(logical_id), {})

    # SNS
    def _sns_topic(self, logical_id: str, props: dict) -> Created:
        fifo = str(props.get("FifoTopic", "false")).lower() == "true"
        name = props.get("TopicName") or self.name_for(logical_id, 256 - (5 if fifo else 0)) + (".fifo" if fifo else "")
        attributes = {k: _stringify(v) for k, v in props.items()
                      if k in ("KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication", "DisplayName",
                               "SignatureVersion", "TracingConfig")}
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for subscription in props.get("Subscription") or []:
            self.client("sns").subscribe(TopicArn=arn, Protocol=subscription["Protocol"],
                                         Endpoint=subscription["Endpoint"])
        return Created(arn, {"TopicArn": arn, "TopicName": name})

    def _sns_subscription(self, logical_id: str, props: dict) -> Created:
        attributes = {k: _stringify(v) for k, v in props.items()
                      if k in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy")}
        arn = self.client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"],
                                           Endpoint=props["Endpoint"], Attributes=attributes,
                                           ReturnSubscriptionArn=True)["SubscriptionArn"]
        return Created(arn, {"Arn": arn})

    # S3
    def _s3_bucket(self, logical_id: str, props: dict) -> Created:
        name = props.get("BucketName") or self.name_for(logical_id, 63).lower()
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled")))
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region},
                             ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled")))
        encryption = props.get("BucketEncryption")
        if encryption:
            rules = []
            for rule in encryption["ServerSideEncryptionConfiguration"]:
                api_rule = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                if "BucketKeyEnabled" in rule:
                    api_rule["BucketKeyEnabled"] = rule["BucketKeyEnabled"]
                rules.append(api_rule)
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        versioning = props.get("VersioningConfiguration")
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning["Status"]})
        if props.get("PublicAccessBlockConfiguration"):
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
        return Created(name, {"Arn": f"arn:{self.partition}:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
                              "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com"})

    def _s3_bucket_policy(self, logical_id: str, props: dict) -> Created:
        document = dict(props["PolicyDocument"])
        statements = document.get("Statement") or []
        statements = [statements] if isinstance(statements, dict) else statements
        kept = [s for s in statements if not _is_tls_only_deny(s)]
        if len(kept) != len(statements):
            # moto evaluates bucket policies without their conditions, so a TLS-only Deny would deny every
            # call; every SDK call is TLS, so in AWS it never applies to them: leave it out locally.
            self.note(f"{logical_id}: TLS-only Deny statement(s) not applied locally (moto ignores the aws:SecureTransport condition)")
        if kept:
            document["Statement"] = kept
            self.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=_stringify(document))
        return Created(self.name_for(logical_id), {})

    # Secrets Manager, SSM
    def _secret(self, logical_id: str, props: dict) -> Created:
        name = props.get("Name") or self.name_for(logical_id, 512)
        secrets = self.client("secretsmanager")
        secret = props.get("SecretString")
        generate = props.get("GenerateSecretString")
        if secret is None and generate is not None:
            options = {k: v for k, v in generate.items() if k in (
                "PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation",
                "ExcludeUppercase", "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType")}
            password = secrets.get_random_password(**options)["RandomPassword"]
            if generate.get("SecretStringTemplate") and generate.get("GenerateStringKey"):
                document = json.loads(generate["SecretStringTemplate"])
                document[generate["GenerateStringKey"]] = password
                secret = json.dumps(document)
            else:
                secret = password
        args: dict[str, Any] = {"Name": name, "SecretString": secret or ""}
        if props.get("KmsKeyId"):
            args["KmsKeyId"] = props["KmsKeyId"]
        if props.get("Description"):
            args["Description"] = props["Description"]
        arn = secrets.create_secret(**args)["ARN"]
        return Created(arn, {"Id": arn})

    def _ssm_parameter(self, logical_id: str, props: dict) -> Created:
        name = props.get("Name") or f"/{self.name_for(logical_id)}"
        self.client("ssm").put_parameter(Name=name, Value=_stringify(props["Value"]), Type=props.get("Type", "String"))
        return Created(name, {"Type": props.get("Type", "String"), "Value": props["Value"]})

    # Cognito
    def _user_pool(self, logical_id: str, props: dict) -> Created:
        name = props.get("UserPoolName") or self.name_for(logical_id, 128)
        pool = self.client("cognito-idp").create_user_pool(PoolName=name)["UserPool"]
        provider = f"cognito-idp.{self.region}.amazonaws.com/{pool['Id']}"
        return Created(pool["Id"], {"Arn": pool["Arn"], "ProviderName": provider, "ProviderURL": f"https://{provider}",
                                    "UserPoolId": pool["Id"]})

    def _resource_server(self, logical_id: str, props: dict) -> Created:
        self.client("cognito-idp").create_resource_server(
            UserPoolId=props["UserPoolId"], Identifier=props["Identifier"], Name=props["Name"],
            Scopes=props.get("Scopes", []))
        return Created(props["Identifier"], {})

    def _user_pool_client(self, logical_id: str, props: dict) -> Created:
        keep = ("ClientName", "GenerateSecret", "AllowedOAuthFlows", "AllowedOAuthScopes",
                "AllowedOAuthFlowsUserPoolClient", "ExplicitAuthFlows", "CallbackURLs", "LogoutURLs",
                "SupportedIdentityProviders", "AccessTokenValidity", "IdTokenValidity", "RefreshTokenValidity",
                "TokenValidityUnits")
        args = {k: v for k, v in props.items() if k in keep}
        args.setdefault("ClientName", self.name_for(logical_id, 128))
        client = self.client("cognito-idp").create_user_pool_client(UserPoolId=props["UserPoolId"], **args)["UserPoolClient"]
        return Created(client["ClientId"], {"ClientSecret": client.get("ClientSecret"), "Name": client["ClientName"]})

    def _user_pool_domain(self, logical_id: str, props: dict) -> Created:
        self.client("cognito-idp").create_user_pool_domain(Domain=props["Domain"], UserPoolId=props["UserPoolId"])
        return Created(props["Domain"], {"CloudFrontDistribution": f"{props['Domain']}.auth.{self.region}.amazoncognito.com"})

    # Lambda
    def _layer(self, logical_id: str, props: dict) -> Created:
        content = self.template.local_path_of(props.get("Content"))
        name = props.get("LayerName") or self.name_for(logical_id, 140)
        if content is None:
            self.note(f"{logical_id}: layer content is not a local path; its code is not on sys.path")
        else:
            python_dir = content / "python"
            self.record.layers[logical_id] = python_dir if python_dir.is_dir() else content
        arn = self.arn("lambda", f"layer:{name}:1")
        return Created(arn, {"LayerVersionArn": arn})

    def _function(self, logical_id: str, props: dict) -> Created:
        name = props.get("FunctionName") or self.name_for(logical_id, 64)
        code_dir = self.template.local_path_of(props.get("Code"))
        if code_dir is None or not code_dir.is_dir():
            raise TemplateError(f"{logical_id}: CodeUri must be a local directory for the local runtime (got {props.get('Code')})")
        runtime = props.get("Runtime", "python3.13")
        if not str(runtime).startswith("python"):
            raise TemplateError(f"{logical_id}: runtime {runtime} cannot run in-process (Python only)")
        role = props.get("Role") or self.arn("iam", f"role/{name}-role", region="")
        if not str(role).startswith("arn:"):
            role = self.arn("iam", f"role/{role}", region="")
        self._ensure_role(role, "lambda.amazonaws.com")
        self.client("lambda").create_function(
            FunctionName=name, Runtime=runtime, Role=role, Handler=props["Handler"],
            Code={"ZipFile": _tiny_zip()}, Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)), Architectures=props.get("Architectures", ["x86_64"]),
            Environment={"Variables": {k: str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()}})
        arn = self.arn("lambda", f"function:{name}")
        self.record.functions[logical_id] = dict(props, FunctionName=name, Arn=arn, CodeDir=str(code_dir))
        return Created(name, {"Arn": arn})

    def _ensure_role(self, role_arn: str, service: str) -> None:
        """moto checks that the execution role exists: create it (no policies; IAM is not enforced locally)."""
        iam = self.client("iam")
        name = role_arn.rsplit("/", 1)[-1]
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
        try:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        except iam.exceptions.EntityAlreadyExistsException:
            pass

    def _event_source_mapping(self, logical_id: str, props: dict) -> Created:
        self.record.event_source_mappings.append(dict(props, LogicalId=logical_id))
        self.note(f"{logical_id}: event source mapping {props.get('EventSourceArn')} -> {props.get('FunctionName')} "
                  "recorded; the runtime polls the sources it has a poller for (SQS: event_sources, DynamoDB streams: stream_events)")
        return Created(f"{self.name_for(logical_id)}", {})

    # Step Functions
    def _state_machine(self, logical_id: str, props: dict) -> Created:
        name = props.get("StateMachineName") or self.name_for(logical_id, 80)
        if "DefinitionString" in props:
            definition = props["DefinitionString"]
        elif "Definition" in props:
            definition = json.dumps(props["Definition"], indent=2)
        else:
            path = self.template.local_path_of(props.get("DefinitionS3Location"))
            if path is None:
                raise TemplateError(f"{logical_id}: DefinitionUri must be a local file for the local runtime")
            try:
                definition = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise TemplateError(f"{logical_id}: cannot read {path}: {exc.strerror}") from None
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", _stringify(value))
        try:
            json.loads(definition)
        except ValueError as exc:
            raise TemplateError(f"{logical_id}: the definition is not valid JSON after substitutions: {exc}") from None
        role = props.get("RoleArn") or self.arn("iam", f"role/{name}-role", region="")
        args: dict[str, Any] = {"name": name, "definition": definition, "roleArn": role,
                                "type": props.get("StateMachineType", "STANDARD")}
        arn = self.client("stepfunctions").create_state_machine(**args)["stateMachineArn"]
        self.record.state_machines[logical_id] = arn
        return Created(arn, {"Arn": arn, "Name": name})

    # EventBridge
    def _events_rule(self, logical_id: str, props: dict) -> Created:
        name = props.get("Name") or self.name_for(logical_id, 64)
        enabled = props.get("State", "ENABLED") == "ENABLED"
        if props.get("ScheduleExpression"):
            for target in props.get("Targets") or []:
                self.record.schedules.append(Schedule(logical_id, props["ScheduleExpression"], target["Arn"],
                                                      target.get("Input"), enabled))
        else:
            events = self.client("events")
            bus = props.get("EventBusName", "default")
            events.put_rule(Name=name, EventPattern=_stringify(props.get("EventPattern", {})),
                            State="ENABLED" if enabled else "DISABLED", EventBusName=bus)
            targets = [{k: v for k, v in t.items() if k in ("Id", "Arn", "Input", "InputPath", "RoleArn")}
                       for t in props.get("Targets") or []]
            if targets:
                events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        arn = self.arn("events", f"rule/{name}")
        return Created(name, {"Arn": arn})

    def _scheduler_schedule(self, logical_id: str, props: dict) -> Created:
        target = props.get("Target") or {}
        name = props.get("Name") or self.name_for(logical_id, 64)
        self.record.schedules.append(Schedule(logical_id, props["ScheduleExpression"], target.get("Arn", ""),
                                              target.get("Input"), props.get("State", "ENABLED") == "ENABLED"))
        return Created(name, {"Arn": self.arn("scheduler", f"schedule/default/{name}")})

    def _event_bus(self, logical_id: str, props: dict) -> Created:
        name = props["Name"]
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        return Created(name, {"Arn": arn, "Name": name})


def create_resources(builder: StackBuilder, only: Iterable[str] | None = None) -> Resolver:
    """Create the builder's template's resources in dependency order, with their intrinsic functions
    resolved; with `only`, just those resources and what they refer to. Returns the resolver, which
    answers Ref / GetAtt for what was created."""
    cfn = builder.template.cfn
    resources = cfn.get("Resources") or {}
    record = builder.record

    def ref(logical_id: str) -> Any:
        if logical_id not in record.resources:
            raise TemplateError(f"{logical_id} is referred to but not created (its Condition is false?)")
        return record.resources[logical_id].ref

    def attr(logical_id: str, name: str) -> Any:
        created = record.resources.get(logical_id)
        if created is None:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{name}: no such resource (or its Condition is false)")
        if name not in created.attrs:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{name}: attribute not available locally "
                                f"(known: {', '.join(sorted(created.attrs)) or 'none'})")
        return created.attrs[name]

    resolver = Resolver(cfn, builder.template.parameters, ref, attr)
    wanted = set(resources) if only is None else with_dependencies(resources, only)
    for logical_id in creation_order(resources):
        if logical_id not in wanted:
            continue
        resource = resources[logical_id]
        if not resolver.resource_enabled(resource):
            builder.note(f"{logical_id}: not created (Condition {resource['Condition']} is false)")
            continue
        builder.create(logical_id, resource["Type"], resolver.resolve(resource.get("Properties") or {}))
    return resolver
