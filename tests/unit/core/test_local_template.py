"""kefu local reads the SAM template as CloudFormation would: parameters checked, intrinsic
functions and conditions resolved, Globals merged into each function."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu_core.flows import ANSWER_PATH_ACTIONS
from kefu_core.local.errors import LocalStackError
from kefu_core.local.template import FunctionSpec, Template, parse_parameter_overrides
from kefu_core.local.websocket import websocket_api

ROOT = Path(__file__).resolve().parents[3]
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kefu/token-secret-AbCdEf"
REQUIRED = {"DatabaseUrl": "postgresql://db/kefu", "RedisUrl": "redis://cache:6379/0",
            "TokenSecretArn": ARN, "WidgetKeys": "pk-1:acme"}


def _functions(**overrides: str) -> dict[str, FunctionSpec]:
    template = Template(ROOT / "template.yaml", overrides={**REQUIRED, **overrides})
    return {spec.logical_id: spec for spec in template.functions()}


def test_every_function_gets_the_environment_the_template_gives_it() -> None:
    # WHEN the project's template is read with the required parameters only
    functions = _functions()
    # THEN the nine functions are there with their own settings and the merged globals
    assert set(functions) == {"ConnectFunction", "DisconnectFunction", "MessageFunction",
                              "AgentFunction", "StreamFunction", "StreamFailureFunction",
                              "AdminFunction", "MigrateFunction",
                              "RetentionFunction"}
    # AND only the deploy-time migration applies the schema; the others verify it
    assert {name: f.environment["SCHEMA_MIGRATIONS"] for name, f in functions.items()} == {
        **{name: "verify" for name in functions}, "MigrateFunction": "apply"}
    message, stream = functions["MessageFunction"], functions["StreamFunction"]
    env = message.environment
    assert env["KEFU_ENV"] == "production" and env["TOKEN_SECRET_ID"] == ARN
    assert env["STREAM_FUNCTION_NAME"] == "kefu-local-StreamFunction"
    assert env["WEBSOCKET_MANAGEMENT_URL"].startswith("https://") \
        and env["WEBSOCKET_MANAGEMENT_URL"].endswith(".execute-api.us-east-1.amazonaws.com/prod")
    # AND conditions drop what is not configured (AWS::NoValue)
    assert "LLM_KEYS_SECRET_ID" not in env and "CRM_URL" not in env and "CRM_TOKEN" not in env
    assert env["ENGINES"] == "[]"  # the parameter's default is given, so the condition holds
    assert message.timeout_s == 25 and stream.timeout_s == 120
    assert stream.memory_mb == 1024 and stream.max_retry_attempts == 0
    # AND a failed stream invocation goes to the queue the consumer function polls
    consumer = functions["StreamFailureFunction"]
    assert stream.on_failure == "arn:aws:sqs:us-east-1:123456789012:kefu-local-StreamFailureQueue"
    assert [(s.queue_arn, s.batch_size, s.report_batch_item_failures)
            for s in consumer.sqs_sources] == [(stream.on_failure, 10, True)]
    # AND the scheduled retention function is read (its schedule is not run locally)
    retention = functions["RetentionFunction"]
    assert retention.sqs_sources == [] and retention.timeout_s == 300
    assert retention.environment["RETENTION_RUN_BUDGET_S"] == "240"
    # AND the layers come in the template's order
    assert [p.name for p in message.layers] == ["shared", "adapter"]
    assert [p.name for p in functions["AgentFunction"].layers] == [
        "shared", "adapter", "memory", "answer"]


def test_a_condition_turns_variables_on() -> None:
    env = _functions(CrmUrl="https://crm.example.com", CrmToken="t")["StreamFunction"].environment
    assert env["CRM_URL"] == "https://crm.example.com" and env["CRM_TOKEN"] == "t"


def test_secrets_replace_the_plain_variables_when_given() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kefu/{}-AbCdEf"
    functions = _functions(CrmUrl="https://crm.example.com", CrmToken="t",
                           CrmTokenSecretArn=arn.format("crm"),
                           DatabasePasswordSecretArn=arn.format("db"),
                           SuperAdminEmail="root@example.com", SuperAdminPassword="p" * 12,
                           SuperAdminPasswordSecretArn=arn.format("root"))
    stream, admin = functions["StreamFunction"].environment, functions["AdminFunction"].environment
    # THEN no plain token or password is in any environment, only where to read them
    assert "CRM_TOKEN" not in stream and stream["CRM_TOKEN_SECRET_ID"] == arn.format("crm")
    assert "SUPER_ADMIN_PASSWORD" not in admin
    assert admin["SUPER_ADMIN_PASSWORD_SECRET_ID"] == arn.format("root")
    assert all(f.environment["DATABASE_PASSWORD_SECRET_ID"] == arn.format("db")
               for f in functions.values())


def test_parameters_are_checked_as_cloudformation_does() -> None:
    with pytest.raises(LocalStackError, match="TokenSecretArn does not match"):
        _functions(TokenSecretArn="kefu/token-secret")
    with pytest.raises(LocalStackError, match="LogLevel"):
        _functions(LogLevel="LOUD")
    with pytest.raises(LocalStackError, match="unknown template parameters: Nope"):
        _functions(Nope="1")
    with pytest.raises(LocalStackError, match="need a value"):
        Template(ROOT / "template.yaml", overrides={})


def test_parameter_overrides_take_both_sam_syntaxes() -> None:
    assert parse_parameter_overrides(
        ["A=1 'B=two words'", "ParameterKey=C,ParameterValue=x=y"]
    ) == {"A": "1", "B": "two words", "C": "x=y"}


@pytest.mark.parametrize(("subnets", "groups", "expected"), [
    ("", "", None),
    ("subnet-1,subnet-2", "", None),  # was [""] security groups: a template AWS refuses
    ("", "sg-1", None),
    ("subnet-1,subnet-2", "sg-1", {"SubnetIds": ["subnet-1", "subnet-2"],
                                   "SecurityGroupIds": ["sg-1"]}),
])
def test_the_functions_join_a_vpc_only_with_subnets_and_security_groups(
    subnets: str, groups: str, expected: dict[str, list[str]] | None,
) -> None:
    template = Template(ROOT / "template.yaml", overrides={
        **REQUIRED, "SubnetIds": subnets, "SecurityGroupIds": groups})
    vpc = template.resolve({"v": template.data["Globals"]["Function"]["VpcConfig"]})
    assert vpc.get("v") == expected


def test_console_actions_that_need_the_answer_path_reach_a_function_that_carries_it() -> None:
    # GIVEN the project's template
    template = Template(ROOT / "template.yaml", overrides=REQUIRED)
    by_name = {spec.name: spec for spec in template.functions()}
    routes = {key: by_name[name] for key, name in websocket_api(template).routes.items()}
    # WHEN we look at the function behind each route
    def layers(route: str) -> set[str]:
        return {path.name for path in routes[route].layers}
    # THEN every action that needs kefu_llm/kefu_memory has a route of its own to a function
    # with those layers, granted the data key (tenants' engine keys) and the LLM keys
    for action in ANSWER_PATH_ACTIONS:
        assert action in routes, action
        assert {"adapter", "memory", "answer"} <= layers(action), action
        policies = str(template.resources[routes[action].logical_id]["Properties"]["Policies"])
        assert "DataKeySecretArn" in policies and "LlmKeysSecretArn" in policies, action
    # AND the visitor's messages and every other action go to a function without them
    assert routes["message"] is routes["$default"]
    assert layers("$default") == {"shared", "adapter"}
