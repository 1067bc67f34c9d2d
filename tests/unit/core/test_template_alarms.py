"""template.yaml as an AWS reviewer reads it for operations: an errors and a throttles alarm
per function, the p99 first-token latency alarm on the EMF metric the functions write, alarm
actions on the optional SNS topic, and a retention on every log group (API Gateway's
execution-log group included). cfn-lint runs on the same file in scripts/sam-check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kefu_core.infra.metrics import NAMESPACE
from kefu_core.local.template import _Loader

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    found: dict[str, Any] = template["Resources"]
    return found


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def test_every_function_has_an_errors_and_a_throttles_alarm(resources: dict[str, Any]) -> None:
    functions = _of_type(resources, "AWS::Serverless::Function")
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm").values()
    watched = {(a["Properties"]["MetricName"], a["Properties"]["Dimensions"][0]["Value"]["Ref"])
               for a in alarms if a["Properties"].get("Namespace") == "AWS/Lambda"}
    assert functions
    for name in functions:
        assert ("Errors", name) in watched, name
        assert ("Throttles", name) in watched, name


def test_first_token_p99_alarm_reads_the_metric_the_functions_write(
    resources: dict[str, Any],
) -> None:
    props = resources["FirstTokenLatencyAlarm"]["Properties"]
    assert props["Namespace"] == NAMESPACE and props["MetricName"] == "FirstTokenLatency"
    assert props["ExtendedStatistic"] == "p99" and props["Unit"] == "Milliseconds"
    assert props["Threshold"] == {"Ref": "FirstTokenP99AlarmMs"}
    # The EMF "service" dimension is POWERTOOLS_SERVICE_NAME: the stack's name on every function
    (dimension,) = props["Dimensions"]
    assert dimension == {"Name": "service", "Value": {"Ref": "AWS::StackName"}}
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}


def test_every_alarm_notifies_the_optional_topic(resources: dict[str, Any]) -> None:
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 13
    for name, alarm in alarms.items():
        assert alarm["Properties"].get("AlarmActions") == expected, name
        assert alarm["Properties"].get("OKActions") == expected, name


def test_every_log_group_has_a_retention(resources: dict[str, Any]) -> None:
    groups = _of_type(resources, "AWS::Logs::LogGroup")
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"}, name
    # API Gateway's own execution-log group is declared (it would otherwise be created
    # without retention), before the stage that writes to it
    names = [g["Properties"]["LogGroupName"] for g in groups.values()]
    assert {"Fn::Sub": "API-Gateway-Execution-Logs_${WebSocketApi}/${StageName}"} in names
    assert "WebSocketExecutionLogGroup" in resources["WebSocketStage"]["DependsOn"]
    # every function writes to a declared group
    for name, function in _of_type(resources, "AWS::Serverless::Function").items():
        ref = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert ref in groups, name


def test_code_level_tracing_is_on_where_a_reply_runs_only(resources: dict[str, Any]) -> None:
    # The X-Ray SDK costs ~70 ms of cold start: only StreamFunction (recall, engine, persist)
    # pays it; every function keeps Lambda's own segments (Tracing: Active).
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    globals_ = template["Globals"]["Function"]
    assert globals_["Tracing"] == "Active"
    assert globals_["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"
    for name, function in _of_type(resources, "AWS::Serverless::Function").items():
        own = (function["Properties"].get("Environment") or {}).get("Variables") or {}
        expected = "false" if name == "StreamFunction" else None
        assert own.get("POWERTOOLS_TRACE_DISABLED") == expected, name
