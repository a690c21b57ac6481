"""Restore from the archive (mxflow.restore) on the in-memory archive: the journal's newest image per item
written back only where the table lacks it or holds it older; an in-flight payment back in the InFlight
index under its owner Region (what the recovery policy walks), a terminal one out of it; a payment only
its received message names rebuilt RCVD from it and its metadata; what cannot be restored reported;
a second run writes nothing; --dry-run writes nothing."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

from fakes import FakeMessageArchive

from mxflow import iso20022
from mxflow.journal import Journal
from mxflow.ports import inflight_key
from mxflow.restore import Restore
from mxflow_local.sample_messages import credit_transfer

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


class FakeRestoreTable:
    def __init__(self, items=None):
        self.items = {(i["pk"]["S"], i["sk"]["S"]): copy.deepcopy(i) for i in items or []}
        self.puts = 0

    def put_if_newer(self, item: dict) -> bool:
        key = (item["pk"]["S"], item["sk"]["S"])
        current = self.items.get(key)
        if current is not None and ("version" not in item or
                                    int(current.get("version", {}).get("N", 0)) >= int(item["version"]["N"])):
            return False
        self.items[key] = copy.deepcopy(item)
        self.puts += 1
        return True

    def current_version(self, pk: str, sk: str):
        current = self.items.get((pk, sk))
        return None if current is None else int(current.get("version", {}).get("N", 0))


def _image(payment_id, status, version, *, owner="eu-west-1", inflight=None):
    image = {"pk": {"S": payment_id}, "sk": {"S": "PAYMENT"}, "status": {"S": status}, "version": {"N": str(version)},
             "ownerRegion": {"S": owner}, "epoch": {"N": "1"}, "clientId": {"S": "c1"},
             "history": {"L": [{"M": {"status": {"S": s}}} for s in ["RCVD", "ACTC", "PDNG", "ACSC"][:version]]}}
    if inflight:
        image["inflight"] = {"S": inflight}
    return image


def _record(image, seq, second):
    return {"eventID": f"e{seq}", "eventName": "INSERT" if seq == 1 else "MODIFY",
            "dynamodb": {"ApproximateCreationDateTime": NOW.timestamp() + second, "SequenceNumber": str(seq),
                         "Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image}}


def test_newest_images_come_back_in_flight_ones_indexed_under_their_owner_and_a_rerun_writes_nothing():
    archive = FakeMessageArchive()
    journal = Journal(archive)
    # p-pending: RCVD then PDNG (its inflight key as another Region wrote it: recomputed from ownerRegion)
    journal.write([_record(_image("p-pending", "RCVD", 1, inflight="us-east-1#01"), 1, 0),
                   _record(_image("p-settled", "RCVD", 1, inflight="eu-west-1#02"), 2, 1)])
    journal.write([_record(_image("p-pending", "PDNG", 3, inflight="us-east-1#01"), 3, 2),
                   _record(_image("p-settled", "ACSC", 4), 4, 3)])
    newer = _image("p-newer", "ACSC", 4)
    journal.write([_record(_image("p-newer", "PDNG", 3, inflight="eu-west-1#03"), 5, 4)])
    table = FakeRestoreTable([newer])  # the table kept a newer state than the journal's: never overwritten

    dry = Restore(archive, table, clock=lambda: NOW).run(dry_run=True).to_dict()
    assert table.puts == 0 and dry["restored"] == {"payments": 2} and dry["skipped"] == {"payments": 1}

    report = Restore(archive, table, clock=lambda: NOW).run().to_dict()
    assert report["journalObjects"] == 3 and report["journalLines"] == 5
    assert report["restored"] == {"payments": 2} and report["skipped"] == {"payments": 1}
    assert report["couldNotRestore"] == []
    pending = table.items[("p-pending", "PAYMENT")]
    assert pending["status"]["S"] == "PDNG" and pending["version"]["N"] == "3"
    assert pending["inflight"]["S"] == inflight_key("p-pending", "eu-west-1")
    settled = table.items[("p-settled", "PAYMENT")]
    assert settled["status"]["S"] == "ACSC" and "inflight" not in settled
    assert table.items[("p-newer", "PAYMENT")] == newer

    again = Restore(archive, table, clock=lambda: NOW).run().to_dict()
    assert again["restored"] == {} and again["skipped"] == {"payments": 3} and table.puts == 2


def test_a_payment_only_its_received_message_names_is_rebuilt_rcvd_and_what_cannot_be_is_reported():
    archive = FakeMessageArchive()
    message = credit_transfer()
    facts = iso20022.extract_facts(iso20022.parse_message(message))
    sha = iso20022.content_hash(message)
    archive.put(f"received/{facts.payment_id}/{sha}.xml", message,
                metadata={"client-id": "c1", "received-at": "2026-12-01T11:59:59.000Z", "owner-region": "eu-west-1"})
    archive.put("received/p-nometadata/abc.xml", credit_transfer())
    archive.put("received/m-neverjournaled/def.xml", b"<x/>", metadata={"client-id": "c1"})
    table = FakeRestoreTable()

    report = Restore(archive, table, clock=lambda: NOW).run().to_dict()
    assert report["restored"] == {"payments": 1}
    item = table.items[(facts.payment_id, "PAYMENT")]
    assert item["status"]["S"] == "RCVD" and item["clientId"]["S"] == "c1"
    assert item["receivedAt"]["S"] == "2026-12-01T11:59:59.000Z" and item["contentSha256"]["S"] == sha
    assert item["inflight"]["S"] == inflight_key(facts.payment_id, "eu-west-1")
    assert sorted(f["key"] for f in report["couldNotRestore"]) == ["received/m-neverjournaled/def.xml",
                                                                  "received/p-nometadata/abc.xml"]
    assert Restore(archive, table, clock=lambda: NOW).run().to_dict()["restored"] == {}
