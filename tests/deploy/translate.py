"""Run inside the SAM CLI's own environment (.kefu/sam-venv): translate template.yaml with
aws-sam-translator, as `sam deploy` has CloudFormation do. Local CodeUri/ContentUri folders
become s3://<bucket>/<LogicalId>.zip (what `sam package` uploads). JSON on stdout."""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

MANAGED = {name: f"arn:aws:iam::aws:policy/{path}{name}" for path, name in [
    ("service-role/", "AWSLambdaBasicExecutionRole"),
    ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
    ("", "AWSXrayWriteOnlyAccess"),
    ("service-role/", "AWSLambdaSQSQueueExecutionRole"),
]}


class _Policies:
    def load(self) -> dict[str, str]:
        return MANAGED


def main() -> None:
    path, bucket = sys.argv[1], sys.argv[2]
    template = yaml_parse(open(path).read())
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://{bucket}/{logical_id}.zip"
    json.dump(transform(template, {}, _Policies()), sys.stdout, default=str)


main()
