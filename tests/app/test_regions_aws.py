"""Two Regions' adapters on moto (docs/regions.md), with the resources built from template.yaml: the Regions'
records and the routing item in the payment table, the takeover's conditional write and the in-flight
index by shard, the health probes doing real work, and the Recovering API through the handler."""
from __future__ import annotations

import json

import pytest
from api_gateway_event import api_event
from conftest import REGION, application_template

from mxflow.aws.dynamodb import DynamoDbPaymentStore, inflight_key
from mxflow.aws.health import AwsHealthProbes
from mxflow.aws.regions import DynamoDbRegionStore
from mxflow.errors import RegionConflict, StatusConflict
from mxflow.ports import Fence
from mxflow.service import default_lifecycle
from mxflow.settings import Settings

PEER = "eu-central-1"


def test_the_routing_item_moves_only_from_the_epoch_read(aws):
    regions = DynamoDbRegionStore(aws.table_name, region=REGION)
    assert regions.routing() is None and regions.region_state(REGION) is None
    first = regions.init_routing({"trafficOwner": REGION, "epoch": 1, "mode": "active-passive"})
    assert regions.init_routing({"trafficOwner": PEER, "epoch": 7}) == first   # the first one stays
    claimed = regions.claim_traffic(to_region=PEER, expected_epoch=1, at="2026-12-01T10:00:00.000Z",
                                    failed_over={"region": REGION, "leaseUntil": "2026-12-01T09:59:58.000Z"})
    assert (claimed["trafficOwner"], claimed["epoch"]) == (PEER, 2)
    with pytest.raises(RegionConflict):   # a second failover that read epoch 1 loses
        regions.claim_traffic(to_region=REGION, expected_epoch=1, at="2026-12-01T10:00:01.000Z", failed_over=None)
    regions.mark_recovered(REGION, 2, "2026-12-01T10:00:05.000Z")
    routing = regions.routing()
    assert routing["failedOver"][REGION] == {"epoch": 2, "at": "2026-12-01T10:00:00.000Z", "by": PEER,
                                             "leaseUntil": "2026-12-01T09:59:58.000Z",
                                             "completedAt": "2026-12-01T10:00:05.000Z"}
    assert [h["trafficOwner"] for h in routing["history"]] == [PEER]
    probed = {"status": "healthy", "consecutiveFailures": 0, "lastProbeAt": "2026-12-01T10:00:06.000Z"}
    assert regions.put_region_state(REGION, probed) is True
    assert regions.region_state(REGION) == {"region": REGION, **probed}


def test_a_health_record_never_goes_back_to_an_earlier_probe_nor_its_lease_to_an_earlier_end(aws):
    """Scheduled probes overlap when one is slow (the schedule does not wait for it), and their writes may
    land out of order: an earlier probe's record is not written over a later one's, and no write shortens
    the lease (RegionGate keeps a lease end on the assumption that leases only grow)."""
    regions = DynamoDbRegionStore(aws.table_name, region=REGION)
    later = {"status": "healthy", "lastProbeAt": "2026-12-01T10:00:02.000Z", "leaseUntil": "2026-12-01T10:00:05.500Z"}
    assert regions.put_region_state(REGION, later) is True
    earlier = {"status": "healthy", "lastProbeAt": "2026-12-01T10:00:01.000Z", "leaseUntil": "2026-12-01T10:00:04.500Z"}
    assert regions.put_region_state(REGION, earlier) is False
    # a later probe that read the record before `later` was written (a failure: the lease it carries is older)
    stale = {"status": "degraded", "lastProbeAt": "2026-12-01T10:00:03.000Z", "leaseUntil": "2026-12-01T10:00:04.500Z"}
    assert regions.put_region_state(REGION, stale) is False
    assert regions.region_state(REGION)["leaseUntil"] == later["leaseUntil"]
    renewed = {"status": "healthy", "lastProbeAt": "2026-12-01T10:00:03.000Z", "leaseUntil": "2026-12-01T10:00:06.500Z"}
    assert regions.put_region_state(REGION, renewed) is True
    assert regions.region_state(REGION) == {"region": REGION, **renewed}


def test_the_takeover_is_one_conditional_write_on_owner_and_epoch_and_moves_the_index_key(aws, message):
    lifecycle = default_lifecycle()
    _, receipt = lifecycle.receive("bank-a-client", message())
    payment_id = receipt["paymentId"]
    store = DynamoDbPaymentStore(aws.table_name, region=REGION)
    shard = inflight_key(payment_id, REGION).split("#")[1]
    assert store.in_flight_page(REGION, shard)[0] == [payment_id]
    record = store.get(payment_id)
    store.take_over(payment_id, expected_status="RCVD", expected_version=record["version"],
                    owner=Fence(REGION, 1), new_owner=Fence(PEER, 2), anchor=f"{payment_id}-e2",
                    event_detail={"actor": "recovery"})
    taken = store.get(payment_id)
    assert (taken["ownerRegion"], taken["epoch"], taken["version"], taken["anchorName"]) == (
        PEER, 2, record["version"] + 1, f"{payment_id}-e2")
    assert [e["status"] for e in taken["history"]] == ["RCVD", "RCVD"] and taken["history"][-1]["actor"] == "recovery"
    assert store.in_flight_page(REGION, shard)[0] == [] and store.in_flight_page(PEER, shard)[0] == [payment_id]
    with pytest.raises(StatusConflict):   # a second run on the same owner and epoch: exactly one wins
        store.take_over(payment_id, expected_status="RCVD", expected_version=record["version"],
                        owner=Fence(REGION, 1), new_owner=Fence(PEER, 2), anchor=f"{payment_id}-e2",
                        event_detail={"actor": "recovery"})


def _probe_resources(aws):
    """The health probe's state machine and queue, as the template defines them."""
    import boto3

    resources = application_template().sam["Resources"]
    definition = resources["HealthProbeStateMachine"]["Properties"]["Definition"]
    sfn, sqs = boto3.client("stepfunctions", region_name=REGION), boto3.client("sqs", region_name=REGION)
    machine = sfn.create_state_machine(name="mxflow-health-probe", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/probe", type="STANDARD")
    queue = sqs.create_queue(QueueName="mxflow-health-probe")["QueueUrl"]
    return machine["stateMachineArn"], queue


def test_the_probes_do_real_work_and_name_the_failing_dependency(aws, monkeypatch):
    from moto.core.config import default_user_config

    # moto runs the probe execution for real (its interpreter), as the local runtime does
    monkeypatch.setitem(default_user_config["stepfunctions"], "execute_state_machine", True)
    machine, queue = _probe_resources(aws)
    settings = Settings.from_environ({**aws.environment, "PROBE_STATE_MACHINE_ARN": machine, "PROBE_QUEUE_URL": queue,
                                      "AWS_REGION": REGION})
    results = {r.name: r for r in AwsHealthProbes(settings).probe()}
    assert set(results) == {"stateMachine", "table", "queue", "archive"}
    assert all(r.ok and r.error is None for r in results.values()), results
    broken = Settings.from_environ({**aws.environment, "PROBE_STATE_MACHINE_ARN": machine, "PROBE_QUEUE_URL": queue,
                                    "AWS_REGION": REGION, "PAYMENT_TABLE": "no-such-table"})
    results = {r.name: r for r in AwsHealthProbes(broken).probe()}
    assert not results["table"].ok and results["table"].error == "ResourceNotFoundException"
    assert results["stateMachine"].ok and results["queue"].ok and results["archive"].ok


def test_the_recovering_api_shows_the_region_and_refuses_an_unhealthy_target(call_api):
    status, body, _ = call_api(api_event("GET", "/regions", resource="/regions"))
    assert status == 200
    assert (body["mode"], body["consistency"], body["trafficOwner"], body["epoch"]) == (
        "active-passive", "EVENTUAL", "us-east-1", 1)
    assert [r["status"] for r in body["regions"]] == ["unknown"] * len(body["regions"])   # never probed
    status, problem, headers = call_api(api_event("POST", f"/regions/{REGION}/recover", resource="/regions/{region}/recover",
                                                  path_parameters={"region": REGION}))
    assert status == 409 and headers["content-type"] == "application/problem+json"
    assert "cannot take the traffic" in problem["detail"]
    status, problem, _ = call_api(api_event("POST", "/regions/ap-south-1/recover", resource="/regions/{region}/recover",
                                            path_parameters={"region": "ap-south-1"}))
    assert status == 404
    status, _, _ = call_api(api_event("GET", "/regions", resource="/regions", scope="payments/read"))
    assert status == 403
