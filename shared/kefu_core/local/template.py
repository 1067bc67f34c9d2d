"""The built SAM template (``.aws-sam/build/template.yaml``), read the way CloudFormation would.

It resolves parameters (template defaults, then ``--parameter-overrides``; checked against
``AllowedPattern``, ``AllowedValues`` and ``MinLength``), conditions and the intrinsic functions
the template uses (``Ref``, ``Fn::Sub``, ``Fn::If``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Select``,
``Fn::Split``, ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``) and merges the
SAM ``Globals`` into each function (maps merged, lists concatenated globals first, scalars
overridden), giving one :class:`FunctionSpec` per ``AWS::Serverless::Function``.

Physical names are what a stack would give them, minus CloudFormation's random suffixes:
function ``{stack}-{LogicalId}``, API ids ``{logicalid}`` shortened to ten characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kefu_core.local.errors import LocalStackError

__all__ = ["FunctionSpec", "QueueSpec", "SqsSource", "StackContext", "Template",
           "parse_parameter_overrides"]

ACCOUNT_ID = "123456789012"  # moto's default account
_NO_VALUE = object()
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")
_INTRINSIC_TAGS = ("Ref", "Condition", "GetAtt", "Sub", "If", "Join", "Select", "Split",
                   "Equals", "Not", "And", "Or", "Base64", "GetAZs", "ImportValue",
                   "FindInMap", "Cidr")


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (``!Ref X`` -> ``{"Ref": "X"}``)."""


def _construct(tag: str) -> Any:
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {key: value}

    return construct


for _tag in _INTRINSIC_TAGS:
    _Loader.add_constructor(f"!{_tag}", _construct(_tag))


def parse_parameter_overrides(items: list[str]) -> dict[str, str]:
    """``sam``'s syntax: ``Key=Value`` or ``ParameterKey=Key,ParameterValue=Value``, several per
    argument separated by spaces (quote values that contain spaces)."""
    import shlex

    result: dict[str, str] = {}
    for item in items:
        for token in shlex.split(item):
            match = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", token)
            if match:
                result[match[1]] = match[2]
                continue
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise LocalStackError(f"bad parameter override {token!r}: expected Key=Value")
            result[key] = value
    return result


@dataclass(frozen=True)
class StackContext:
    stack_name: str = "kefu-local"
    region: str = "us-east-1"
    account_id: str = ACCOUNT_ID

    def function_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"[:64]

    def function_arn(self, logical_id: str) -> str:
        return (f"arn:aws:lambda:{self.region}:{self.account_id}:function:"
                f"{self.function_name(logical_id)}")

    def queue_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"[:80]

    def queue_arn(self, logical_id: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{self.queue_name(logical_id)}"

    def bucket_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}".lower()[:63]


@dataclass(frozen=True)
class QueueSpec:
    """One ``AWS::SQS::Queue`` of the template, created on moto's SQS."""

    logical_id: str
    name: str
    arn: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class SqsSource:
    """An SQS event source mapping of a function (an ``SQS`` event in SAM)."""

    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False


@dataclass(frozen=True)
class FunctionSpec:
    """One function as Lambda would run it."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]
    layers: list[Path]
    max_retry_attempts: int = 2  # Lambda's default for asynchronous invokes
    max_event_age_s: int = 6 * 3600
    log_group: str = ""
    on_failure: str | None = None  # EventInvokeConfig's OnFailure destination (an SQS ARN)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Template:
    """A built template with its parameters resolved."""

    def __init__(
        self,
        path: Path,
        *,
        overrides: Mapping[str, str] | None = None,
        context: StackContext | None = None,
        sqs_endpoint: str = "http://127.0.0.1:0",
    ) -> None:
        if not path.is_file():
            raise LocalStackError(f"{path} not found: run `sam build` first (scripts/sam-check)")
        try:
            data = yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise LocalStackError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise LocalStackError(f"{path} is not a template")
        self.path = path
        self.root = path.parent
        self.data: dict[str, Any] = data
        self.context = context or StackContext()
        self.resources: dict[str, Any] = dict(data.get("Resources") or {})
        self.parameters = self._parameters(dict(overrides or {}))
        self.sqs_endpoint = sqs_endpoint
        self._conditions: dict[str, bool] = {}

    # -- parameters ------------------------------------------------------------------------
    def _parameters(self, overrides: dict[str, str]) -> dict[str, Any]:
        declared: dict[str, Any] = dict(self.data.get("Parameters") or {})
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise LocalStackError(f"unknown template parameters: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        missing = []
        for name, spec in declared.items():
            if name in overrides:
                raw: Any = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                missing.append(name)
                continue
            values[name] = self._check_parameter(name, spec, str(raw))
        if missing:
            raise LocalStackError("parameters without a default need a value "
                                  f"(--parameter-overrides): {', '.join(missing)}")
        return values

    @staticmethod
    def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> Any:
        kind = spec.get("Type", "String")
        if kind == "CommaDelimitedList":
            return [part.strip() for part in value.split(",")] if value else [""]
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            raise LocalStackError(f"parameter {name}: {value!r} is not one of "
                                  f"{spec['AllowedValues']}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            raise LocalStackError(f"parameter {name} does not match {pattern}")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            raise LocalStackError(f"parameter {name} must be at least {spec['MinLength']} long")
        if kind == "Number":
            try:
                number = float(value)
            except ValueError as exc:
                raise LocalStackError(f"parameter {name} must be a number") from exc
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise LocalStackError(f"parameter {name} is below {spec['MinValue']}")
        return value

    # -- intrinsics ------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.data.get("Conditions") or {}
            if name not in conditions:
                raise LocalStackError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def _ref(self, name: str) -> Any:
        ctx = self.context
        pseudo = {
            "AWS::Region": ctx.region, "AWS::AccountId": ctx.account_id,
            "AWS::StackName": ctx.stack_name, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": _NO_VALUE,
            "AWS::StackId": (f"arn:aws:cloudformation:{ctx.region}:{ctx.account_id}:stack/"
                             f"{ctx.stack_name}/local"),
            "AWS::NotificationARNs": [],
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.resources.get(name)
        if resource is None:
            raise LocalStackError(f"Ref to unknown name {name}")
        kind = resource.get("Type", "")
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return ctx.function_name(name)
        if kind in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            return f"arn:aws:lambda:{ctx.region}:{ctx.account_id}:layer:{name}:1"
        if kind in ("AWS::ApiGatewayV2::Api", "AWS::Serverless::HttpApi"):
            return api_id(name)
        if kind == "AWS::Logs::LogGroup":
            props = resource.get("Properties") or {}
            return self.resolve(props.get("LogGroupName", name))
        if kind == "AWS::SQS::Queue":
            return self.queue_url(name)
        if kind == "AWS::S3::Bucket":
            return ctx.bucket_name(name)
        return name

    def queue_url(self, logical_id: str) -> str:
        """Where the queue is on moto (``sqs_endpoint`` set by the stack), as SQS names it."""
        ctx = self.context
        return f"{self.sqs_endpoint}/{ctx.account_id}/{ctx.queue_name(logical_id)}"

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise LocalStackError(f"Fn::GetAtt on unknown resource {logical_id}")
        kind = resource.get("Type", "")
        ctx = self.context
        if attribute == "Arn" and kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return ctx.function_arn(logical_id)
        if attribute == "Arn" and kind == "AWS::Logs::LogGroup":
            name = self._ref(logical_id)
            return f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{name}:*"
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return ctx.queue_arn(logical_id)
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return ctx.queue_name(logical_id)
        if kind == "AWS::SQS::Queue" and attribute == "QueueUrl":
            return self.queue_url(logical_id)
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{ctx.bucket_name(logical_id)}"
        if attribute == "ApiEndpoint":
            return f"https://{api_id(logical_id)}.execute-api.{ctx.region}.amazonaws.com"
        return f"{logical_id}.{attribute}"

    def _sub(self, value: Any) -> str:
        if isinstance(value, list):
            text, variables = value[0], {k: self.resolve(v) for k, v in value[1].items()}
        else:
            text, variables = value, {}

        def replace(match: re.Match[str]) -> str:
            name = match[1].strip()
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self._ref(name))

        return _SUB.sub(replace, str(text)).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function evaluated (``AWS::NoValue`` removed)."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(str(arg))
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._get_att(str(parts[0]), str(self.resolve(parts[1])))
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(v) for v in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(str(sep))
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right) if not isinstance(left, list) else left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key.startswith("Fn::"):
                raise LocalStackError(f"{key} is not supported by kefu local")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    # -- functions -------------------------------------------------------------------------
    def functions(self) -> list[FunctionSpec]:
        globals_ = ((self.data.get("Globals") or {}).get("Function") or {})
        specs = []
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            props = _merge_globals(globals_, resource.get("Properties") or {})
            specs.append(self._function(logical_id, self.resolve(props)))
        return specs

    def _function(self, logical_id: str, props: dict[str, Any]) -> FunctionSpec:
        runtime = str(props.get("Runtime", ""))
        if not runtime.startswith("python"):
            raise LocalStackError(f"{logical_id}: runtime {runtime!r} is not supported")
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str):
            raise LocalStackError(f"{logical_id}: CodeUri must be a local folder")
        code_dir = (self.root / code_uri).resolve()
        if not code_dir.is_dir():
            raise LocalStackError(f"{logical_id}: {code_dir} is missing; run `sam build`")
        variables = ((props.get("Environment") or {}).get("Variables") or {})
        environment = {str(k): _env_value(v) for k, v in variables.items()}
        invoke_config = props.get("EventInvokeConfig") or {}
        logging_config = props.get("LoggingConfig") or {}
        on_failure = ((invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {})
        if on_failure and on_failure.get("Type", "SQS") != "SQS":
            raise LocalStackError(f"{logical_id}: only SQS OnFailure destinations run locally")
        sources = []
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            event_props = event.get("Properties") or {}
            sources.append(SqsSource(
                queue_arn=str(event_props.get("Queue")),
                batch_size=int(event_props.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in (
                    event_props.get("FunctionResponseTypes") or [])))
        name = self.context.function_name(logical_id)
        return FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=self.context.function_arn(logical_id),
            code_dir=code_dir,
            handler=str(props.get("Handler", "")),
            runtime=runtime,
            timeout_s=int(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            environment=environment,
            layers=[self._layer_dir(str(arn)) for arn in props.get("Layers") or []],
            max_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", 2)),
            max_event_age_s=int(invoke_config.get("MaximumEventAgeInSeconds", 6 * 3600)),
            log_group=str(logging_config.get("LogGroup") or f"/aws/lambda/{name}"),
            on_failure=str(on_failure["Destination"]) if on_failure.get("Destination") else None,
            sqs_sources=sources,
        )

    # -- queues ----------------------------------------------------------------------------
    def buckets(self) -> list[str]:
        """The names of the template's S3 buckets (created on moto's S3)."""
        return [self.context.bucket_name(logical_id)
                for logical_id, resource in self.resources.items()
                if resource.get("Type") == "AWS::S3::Bucket"]

    def queues(self) -> list[QueueSpec]:
        """The template's SQS queues, with the attributes SQS's CreateQueue takes."""
        specs = []
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::SQS::Queue":
                continue
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            props = self.resolve(resource.get("Properties") or {})
            attributes: dict[str, str] = {}
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                        "ReceiveMessageWaitTimeSeconds", "MaximumMessageSize"):
                if key in props:
                    attributes[key] = str(props[key])
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            specs.append(QueueSpec(logical_id=logical_id,
                                   name=self.context.queue_name(logical_id),
                                   arn=self.context.queue_arn(logical_id),
                                   attributes=attributes))
        return specs

    def _layer_dir(self, arn: str) -> Path:
        match = re.fullmatch(r"arn:aws:lambda:[^:]+:\d+:layer:([^:]+):\d+", arn)
        resource = self.resources.get(match[1]) if match else None
        if resource is None:
            raise LocalStackError(f"layer {arn} is not in this template (only local layers run)")
        content = (resource.get("Properties") or {}).get("ContentUri")
        folder = (self.root / str(content)).resolve()
        if not folder.is_dir():
            raise LocalStackError(f"layer folder {folder} is missing; run `sam build`")
        return folder


def api_id(logical_id: str) -> str:
    """A stable API id shaped like API Gateway's (ten lower-case characters)."""
    return (re.sub(r"[^a-z0-9]", "", logical_id.lower()) + "0000000000")[:10]


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _merge_globals(globals_: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's rule: maps are merged, lists are concatenated (globals first), scalars replaced."""
    merged: dict[str, Any] = dict(globals_)
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = [*base, *value]
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).split("::")[0] in ("Ref", "Fn", "Condition")
