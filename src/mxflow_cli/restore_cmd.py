"""`mxflow restore --from-archive [--bucket B] [--since T] [--dry-run]`: rebuild the payment table from the
archive (mxflow.restore): each item's newest journaled image, then the payments only their received
message names; written only where the table lacks them or holds them older, so running it again changes
nothing. It reports what it restored, what it skipped (already there, as new or newer) and what it could
not restore, and exits 0 when everything could be restored, 1 otherwise, 2 for a usage error.

Where: against a running `mxflow local up` (its published AWS endpoint and stack, the default when one is
running and neither --table nor --stack is given), or in AWS with the operator's credentials (the usual
AWS environment: AWS_PROFILE, AWS_REGION, ...), naming the stack (`--stack`: its outputs name the bucket
and the table) or both `--bucket` and `--table`.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from mxflow_cli.main import UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "restore", help="rebuild the payment table from the archive (journal and received messages)",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-archive", action="store_true", required=True,
                        help="restore from the archive bucket (the only source there is)")
    parser.add_argument("--bucket", help="the archive bucket (default: the stack's ArchiveBucket)")
    parser.add_argument("--table", help="the payment table to restore into (default: the stack's PaymentTable)")
    parser.add_argument("--stack", help="in AWS: the stack whose outputs name the bucket and the table")
    parser.add_argument("--region", help="the Region (default: the local runtime's, or the AWS environment's)")
    parser.add_argument("--since", help="only changes journaled from this time on (ISO-8601, e.g. 2026-12-01T10:00:00Z)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be restored; write nothing")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(func=run)


def parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: not an ISO-8601 date and time (e.g. 2026-12-01T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def target(args) -> dict:
    """{"bucket", "table", "region", "clients": {service: boto3 client}, "where"} for the arguments."""
    import boto3

    if args.stack or (args.table and args.bucket):
        session = boto3.session.Session(region_name=args.region) if args.region else boto3.session.Session()
        region = session.region_name
        if not region:
            raise UsageError("no Region: give --region or set AWS_REGION")
        bucket, table = args.bucket, args.table
        if args.stack:
            outputs = _stack_outputs(session.client("cloudformation"), args.stack)
            bucket = bucket or outputs.get("ArchiveBucketName")
            table = table or outputs.get("PaymentTableName")
            if not bucket or not table:
                raise UsageError(f"stack {args.stack} has no ArchiveBucketName/PaymentTableName outputs")
        return {"bucket": bucket, "table": table, "region": region, "where": f"AWS {region}",
                "client": lambda service: session.client(service)}
    from mxflow_local.auth import NoRunningServer
    from mxflow_local.aws_endpoint import load_published_endpoint

    try:
        state = load_published_endpoint()
    except NoRunningServer as exc:
        raise UsageError(f"{exc}; in AWS give --stack NAME, or --bucket and --table") from None
    region = args.region or state["region"]
    stack = (state.get("stacks") or {}).get(region)
    if not stack:
        raise UsageError(f"--region {region}: the running runtime serves {', '.join(state.get('regions') or [])}")
    resources = stack["resources"]
    environment = state["environment"]
    session = boto3.session.Session(aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"], region_name=region)
    return {"bucket": args.bucket or resources["ArchiveBucket"], "table": args.table or resources["PaymentTable"],
            "region": region, "where": f"the local runtime at {state['endpointUrl']} ({region})",
            "client": lambda service: session.client(service, endpoint_url=state["endpointUrl"])}


def _stack_outputs(cloudformation, stack: str) -> dict:
    from botocore.exceptions import ClientError

    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        raise UsageError(f"stack {stack}: {exc.response.get('Error', {}).get('Message', exc)}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def run(args) -> int:
    since = parse_since(args.since)
    where = target(args)
    from mxflow.aws.restore_table import DynamoDbRestoreTable
    from mxflow.aws.s3 import S3MessageArchive
    from mxflow.restore import Restore

    archive = S3MessageArchive(where["bucket"], boto_client=where["client"]("s3"))
    table = DynamoDbRestoreTable(where["table"], boto_client=where["client"]("dynamodb"))
    report = Restore(archive, table).run(since=since, dry_run=args.dry_run).to_dict()
    report.update(bucket=where["bucket"], table=where["table"], where=where["where"])
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print(report)
    return 1 if report["couldNotRestore"] else 0


def _print(report: dict) -> None:
    verb = "would restore" if report["dryRun"] else "restored"
    print(f"mxflow restore: {report['where']}: archive {report['bucket']} -> table {report['table']}")
    print(f"  journal: {report['journalObjects']} objects, {report['journalLines']} changes")
    print(f"  {verb}: " + (", ".join(f"{n} {k}" for k, n in report["restored"].items()) or "nothing"))
    print("  skipped (already there, as new or newer): "
          + (", ".join(f"{n} {k}" for k, n in report["skipped"].items()) or "nothing"))
    if report["couldNotRestore"]:
        print(f"  could not restore {len(report['couldNotRestore'])}:")
        for failure in report["couldNotRestore"]:
            print(f"    {failure['key']}: {failure['reason']}")
    sys.stdout.flush()
