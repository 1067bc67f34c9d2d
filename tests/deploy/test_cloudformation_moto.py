"""The SAM-translated template deployed to CloudFormation (moto's server), as far as moto goes,
then read back as an AWS reviewer would: functions, roles and their policies, layers, queues,
log groups.

What moto cannot create is left out of the deployed copy, said here:
- the ``AWS::ApiGatewayV2::*`` resources (moto's CloudFormation has no API Gateway v2): the two
  APIs become parameters of the same names, so every ``Ref``/``${...}`` to them (execute-api
  ARNs in policies and permissions, the management URL) still resolves, to fixed ids;
- the ``SchemaMigration`` custom resource (moto would run its function in Docker): dropped,
  with the ``DependsOn`` to it;
- the outputs (some read API attributes);
- ``AWS::Lambda::EventInvokeConfig`` (the OnFailure destination) is skipped by moto with a
  warning: the destination is checked through the role's ``sqs:SendMessage`` grant instead;
- conditional role policies are decided before (moto keeps ``AWS::NoValue`` in a list as a
  null policy): the parameters given make ``HasDatabasePasswordSecret`` true, the other
  optional conditions false.
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.secrets_manager import moto_server

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".kefu" / "sam-venv" / "bin" / "python"
BUCKET = "kefu-artifacts"
REGION = "us-east-1"
ACCOUNT = "123456789012"
WS_API, HTTP_API = "wsapi12345", "httpapi123"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:kefu/token-secret-AbCdEf"
DB_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:kefu/db-password-AbCdEf"
POSTING = {"MessageFunction", "AgentFunction", "StreamFunction", "StreamFailureFunction"}

pytestmark = pytest.mark.timeout(300)


def _translated() -> dict[str, Any]:
    assert SAM_PYTHON.is_file(), "the SAM CLI's environment is missing: scripts/bootstrap --sam"
    out = subprocess.run(
        [str(SAM_PYTHON), str(Path(__file__).with_name("translate.py")),
         str(ROOT / "template.yaml"), BUCKET],
        check=True, capture_output=True, text=True,
        env={**os.environ, "AWS_DEFAULT_REGION": REGION})
    template: dict[str, Any] = json.loads(out.stdout)
    return template


def _for_moto(template: dict[str, Any]) -> dict[str, Any]:
    resources = template["Resources"]
    dropped = {lid for lid, r in resources.items()
               if r["Type"].startswith(("AWS::ApiGatewayV2::", "Custom::"))}
    for lid in dropped:
        del resources[lid]
    for resource in resources.values():
        depends = resource.get("DependsOn")
        if depends:
            kept = [d for d in ([depends] if isinstance(depends, str) else depends)
                    if d not in dropped]
            if kept:
                resource["DependsOn"] = kept
            else:
                del resource["DependsOn"]
    for resource in resources.values():  # moto keeps AWS::NoValue in lists as None
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::IAM::Role" and "Policies" in props:
            props["Policies"] = [p for p in (_decided(item) for item in props["Policies"])
                                 if p != {"Ref": "AWS::NoValue"}]
    template["Parameters"]["WebSocketApi"] = {"Type": "String", "Default": WS_API}
    template["Parameters"]["AdminHttpApi"] = {"Type": "String", "Default": HTTP_API}
    template.pop("Outputs", None)
    return template


# The conditions as the parameters below make them (a password secret; nothing else optional).
CONDITIONS = {"HasDatabasePasswordSecret": True}


def _decided(item: Any) -> Any:
    if isinstance(item, dict) and list(item) == ["Fn::If"]:
        name, yes, no = item["Fn::If"]
        return _decided(yes if CONDITIONS.get(name, False) else no)
    return item


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    template = _for_moto(_translated())
    with moto_server() as endpoint:
        def client(name: str) -> Any:
            return boto3.client(name, endpoint_url=endpoint, region_name=REGION,
                                aws_access_key_id="testing", aws_secret_access_key="testing")

        s3 = client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion"):
                s3.put_object(Bucket=BUCKET, Key=f"{logical_id}.zip", Body=_zip())
        cfn = client("cloudformation")
        cfn.create_stack(StackName="kefu", TemplateBody=json.dumps(template),
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in {
                             "DatabaseUrl": "postgresql://kefu@db.internal:5432/kefu",
                             "DatabasePasswordSecretArn": DB_SECRET,
                             "RedisUrl": "rediss://cache.internal:6379/0",
                             "TokenSecretArn": SECRET, "WidgetKeys": "pk-1:acme",
                             "LogRetentionDays": "30"}.items()])
        deadline = time.monotonic() + 120
        while True:
            status = cfn.describe_stacks(StackName="kefu")["Stacks"][0]["StackStatus"]
            if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
                    cfn.list_stack_resources(StackName="kefu")["StackResourceSummaries"]}
        yield {"status": status, "client": client, "physical": physical, "template": template}


def _role_statements(stack: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    iam = stack["client"]("iam")
    role = stack["physical"][role_logical_id]
    statements = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto stores a policy CloudFormation gave as a dict
            document = ast.literal_eval(document)  # as its Python repr

        statements += document["Statement"]
    return statements


def _resources(statement: dict[str, Any]) -> list[str]:
    value = statement.get("Resource", [])
    return value if isinstance(value, list) else [value]


def _actions(statement: dict[str, Any]) -> list[str]:
    value = statement.get("Action", [])
    return value if isinstance(value, list) else [value]


def test_the_stack_is_created(stack: dict[str, Any]) -> None:
    assert stack["status"] == "CREATE_COMPLETE"


def test_the_functions_exist_with_their_runtime_and_layers(stack: dict[str, Any]) -> None:
    lam = stack["client"]("lambda")
    functions = {lid for lid, r in stack["template"]["Resources"].items()
                 if r["Type"] == "AWS::Lambda::Function"}
    assert functions == {"ConnectFunction", "DisconnectFunction", "MessageFunction",
                         "AgentFunction", "StreamFunction", "StreamFailureFunction",
                         "MigrateFunction", "AdminFunction",
                         "RetentionFunction"}
    for logical_id in functions:
        config = lam.get_function_configuration(FunctionName=stack["physical"][logical_id])
        assert config["Runtime"] == "python3.12" and config["Architectures"] == ["x86_64"]
        # No password and no VPC (none was given) in any function
        env = config["Environment"]["Variables"]
        assert ":" not in env["DATABASE_URL"].split("@")[0].removeprefix("postgresql://")
        assert env["DATABASE_PASSWORD_SECRET_ID"] == DB_SECRET
        assert not (config.get("VpcConfig") or {}).get("SubnetIds")


def test_the_layers_are_created_and_each_function_names_its_own(stack: dict[str, Any]) -> None:
    # moto's CloudFormation creates the layer versions but does not pass a function's Layers
    # on, so the functions' layer lists are read from the translated template
    lam = stack["client"]("lambda")
    names = sorted(layer["LayerName"] for layer in lam.list_layers()["Layers"])
    kinds_created = sorted(name.split("-")[1].rstrip("0123456789abcdef") for name in names)
    assert kinds_created == ["AdapterLayer", "AnswerLayer", "CoreLayer", "MemoryLayer"], names
    resources = stack["template"]["Resources"]
    layers = {lid: [ref["Ref"] for ref in r["Properties"].get("Layers", [])]
              for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    light = {"ConnectFunction", "DisconnectFunction", "MessageFunction",
             "StreamFailureFunction"}
    for logical_id, refs in layers.items():
        assert all(resources[ref]["Type"] == "AWS::Lambda::LayerVersion" for ref in refs)
        kinds = {ref.rstrip("0123456789abcdef") for ref in refs}
        if logical_id in light:  # the WebSocket plumbing carries no numpy, jieba or openai
            assert "AnswerLayer" not in kinds, logical_id


def test_manage_connections_only_where_a_function_posts(stack: dict[str, Any]) -> None:
    for logical_id in ("ConnectFunction", "DisconnectFunction", "MessageFunction",
                       "AgentFunction", "StreamFunction", "StreamFailureFunction",
                       "MigrateFunction", "AdminFunction",
                       "RetentionFunction"):
        statements = _role_statements(stack, f"{logical_id}Role")
        posting = [s for s in statements if "execute-api:ManageConnections" in _actions(s)]
        assert bool(posting) == (logical_id in POSTING), logical_id
        for statement in posting:  # this API and stage only, the @connections paths only
            assert sorted(_resources(statement)) == sorted(
                f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{WS_API}/prod/{verb}/@connections/*"
                for verb in ("POST", "GET", "DELETE"))


def test_secrets_are_granted_by_exact_arn(stack: dict[str, Any]) -> None:
    for logical_id in ("ConnectFunction", "MessageFunction", "AgentFunction", "StreamFunction",
                       "AdminFunction", "StreamFailureFunction", "MigrateFunction",
                       "RetentionFunction"):
        statements = _role_statements(stack, f"{logical_id}Role")
        secret_resources = {r for s in statements if any(
            a.startswith("secretsmanager:") for a in _actions(s)) for r in _resources(s)}
        # THEN no wildcard: only the token secret (not the migration nor the retention run,
        # which verify no token) and the password secret
        tokenless = {"MigrateFunction", "RetentionFunction"}
        expected = {DB_SECRET} | ({SECRET} if logical_id not in tokenless else set())
        assert secret_resources == expected, logical_id


def test_only_message_invokes_stream_and_only_stream_sends_to_its_failure_queue(
    stack: dict[str, Any],
) -> None:
    physical = stack["physical"]
    queue_arn = (f"arn:aws:sqs:{REGION}:{ACCOUNT}:"
                 f"{physical['StreamFailureQueue'].rsplit('/', 1)[-1]}")
    invoke = [r for s in _role_statements(stack, "MessageFunctionRole")
              if "lambda:InvokeFunction" in _actions(s) for r in _resources(s)]
    assert invoke == [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical['StreamFunction']}"]
    sends = [r for s in _role_statements(stack, "StreamFunctionRole")
             if "sqs:SendMessage" in _actions(s) for r in _resources(s)]
    assert sends == [queue_arn]


def test_the_failure_queue_has_its_dead_letter_queue_and_consumer(stack: dict[str, Any]) -> None:
    sqs, lam = stack["client"]("sqs"), stack["client"]("lambda")
    physical = stack["physical"]
    attributes = sqs.get_queue_attributes(QueueUrl=physical["StreamFailureQueue"],
                                          AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(
        physical["StreamFailureDeadLetterQueue"].rsplit("/", 1)[-1])
    assert int(redrive["maxReceiveCount"]) == 5 and attributes["VisibilityTimeout"] == "180"
    mappings = lam.list_event_source_mappings(
        FunctionName=physical["StreamFailureFunction"])["EventSourceMappings"]
    assert [m["EventSourceArn"] for m in mappings] == [attributes["QueueArn"]]


def test_every_log_group_has_a_retention(stack: dict[str, Any]) -> None:
    logs = stack["client"]("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]
    ours = [g for g in groups if "/kefu/" in g["logGroupName"]]
    assert {g["logGroupName"].rsplit("/", 1)[-1] for g in ours} >= {
        "connect", "disconnect", "message", "stream", "stream-failure", "migrate", "admin",
        "retention"}
    assert all(g.get("retentionInDays") == 30 for g in ours), ours


def test_retention_runs_hourly_and_invokes_nothing(stack: dict[str, Any]) -> None:
    # GIVEN the translated template's schedule for the retention function
    resources = stack["template"]["Resources"]
    rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    (rule,) = [r for r in rules
               if r["Targets"][0]["Arn"] == {"Fn::GetAtt": ["RetentionFunction", "Arn"]}]
    # THEN it runs every hour, and its role neither invokes functions nor sends messages
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    actions = {a for s in _role_statements(stack, "RetentionFunctionRole") for a in _actions(s)}
    assert not {a for a in actions if a.startswith(("lambda:", "sqs:", "execute-api:"))}


# What each function may do with the image bucket (docs/deploy.md "Images"): nothing for the
# functions that never touch an image.
IMAGE_GRANTS = {
    "MessageFunction": {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"},
    "AgentFunction": {"s3:GetObject"},
    "StreamFunction": {"s3:GetObject"},
    "AdminFunction": {"s3:GetObject", "s3:DeleteObject", "s3:ListBucket"},
    "RetentionFunction": {"s3:DeleteObject", "s3:ListBucket"},
    "ConnectFunction": set(), "DisconnectFunction": set(), "StreamFailureFunction": set(),
    "MigrateFunction": set(),
}


def test_the_image_bucket_is_private_encrypted_expiring_and_granted_by_need(
    stack: dict[str, Any],
) -> None:
    # GIVEN the deployed bucket
    s3 = stack["client"]("s3")
    bucket = stack["physical"]["ImageBucket"]
    # THEN it is encrypted
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == \
        "AES256"
    # AND (moto's CloudFormation does not apply these: read from the template) no public
    # access, no plain HTTP, abandoned uploads expire after a day, CORS allows POST only
    properties = stack["template"]["Resources"]["ImageBucket"]["Properties"]
    block = properties["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = {r["Id"]: r for r in properties["LifecycleConfiguration"]["Rules"]}
    assert (rules["AbandonedUploads"]["Prefix"], rules["AbandonedUploads"]["ExpirationInDays"]) \
        == ("uploads/", 1)
    assert rules["ImageMaxAge"]["ExpirationInDays"] == {"Ref": "ImageMaxAgeDays"}
    assert "VersioningConfiguration" not in properties  # an erased image leaves no version
    (cors,) = properties["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedMethods"] == ["POST"]
    policy = stack["template"]["Resources"]["ImageBucketPolicy"]["Properties"]
    (tls,) = policy["PolicyDocument"]["Statement"]
    assert (tls["Effect"], tls["Condition"]) == ("Deny",
                                                 {"Bool": {"aws:SecureTransport": "false"}})
    # AND each function is granted only what it does with images, on this bucket only
    for logical_id, expected in IMAGE_GRANTS.items():
        statements = [s for s in _role_statements(stack, f"{logical_id}Role")
                      if any(a.startswith("s3:") for a in _actions(s))]
        assert {a for s in statements for a in _actions(s)} == expected, logical_id
        for statement in statements:
            for resource in _resources(statement):
                assert resource in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/images/*",
                                    f"arn:aws:s3:::{bucket}/uploads/*"), (logical_id, resource)
