"""The deployed console's config.json from its stack's outputs (`make deploy-console`).

    aws cloudformation describe-stacks --stack-name mxflow --output json > stack.json
    python -m mxflow_cli.console_config stack.json              # config.json on stdout
    python -m mxflow_cli.console_config stack.json --output ConsoleBucketName   # one output's value

The page (console/js/api.js, auth.js) reads: `mode` "cognito" (the hosted UI, authorization code with
PKCE), `authority` (the hosted UI's base URL), `clientId` (the people's app client), `redirectUri` and
`logoutUri` (the distribution, as the app client's callback and sign-out URLs), `scope` (openid: the
payments scopes come from the person's groups), `apiBase` "/v1" (the distribution forwards /v1/* to the
API's stage: the page and its API share one origin).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NEEDED = ("ConsoleUrl", "ConsoleClientId", "AuthUrl", "ConsoleBucketName", "ConsoleDistributionId")


def stack_outputs(describe_stacks: dict) -> dict[str, str]:
    (stack,) = describe_stacks["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    missing = [name for name in NEEDED if name not in outputs]
    if missing:
        raise ValueError(f"the stack has no output {', '.join(missing)}: deploy this template first (sam deploy)")
    return outputs


def console_config(outputs: dict[str, str]) -> dict:
    site = outputs["ConsoleUrl"].rstrip("/") + "/"
    return {"mode": "cognito", "apiBase": "/v1", "authority": outputs["AuthUrl"].rstrip("/"),
            "clientId": outputs["ConsoleClientId"], "redirectUri": site, "logoutUri": site, "scope": "openid"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mxflow_cli.console_config", description=__doc__.split("\n")[0])
    parser.add_argument("stack_json", type=Path, help="the output of aws cloudformation describe-stacks --output json")
    parser.add_argument("--output", help="print this stack output's value instead of the config")
    args = parser.parse_args(argv)
    try:
        outputs = stack_outputs(json.loads(args.stack_json.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as error:
        print(f"console config: {error}", file=sys.stderr)
        return 2
    print(outputs[args.output] if args.output else json.dumps(console_config(outputs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
