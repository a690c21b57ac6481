"""Property test of the split of a message with several transactions (issue 13): for any amounts, the
transaction messages cut from the message's bytes (mxflow.iso20022.bulk.layout_of, what the split and
GET /payments/{id}/messages/received rebuild) are each valid against the official XSD, carry one
transaction each, and their amounts add up to the group's TtlIntrBkSttlmAmt."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxflow.iso20022 import parse_message, validate_schema
from mxflow.iso20022.bulk import group_issues, layout_of, transaction_count, transaction_facts
from mxflow.iso20022.facts import extract_facts
from mxflow_local.sample_messages import bulk_credit_transfer

# ActiveCurrencyAndAmount: at most 18 digits, 5 of them fraction digits; EUR takes 2 under the rules.
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(amounts, min_size=2, max_size=12))
def test_transaction_amounts_add_up_to_the_group_total(registry, values):
    data = bulk_credit_transfer(values)
    parsed = parse_message(data)
    assert group_issues(parsed, profile="iso", registry=registry) == []
    total = Decimal(parsed.root.xpath("//*[local-name()='TtlIntrBkSttlmAmt']/text()")[0])
    layout = layout_of(data)
    assert len(layout) == transaction_count(parsed) == len(values)
    parts = [layout.transaction_message(data, index) for index in range(len(layout))]
    for part in parts:
        one = parse_message(part)
        assert transaction_count(one) == 1
        assert validate_schema(one, registry) == []
    split_amounts = [Decimal(transaction_facts(part).amount) for part in parts]
    assert split_amounts == [Decimal(str(v)) for v in values]
    assert sum(split_amounts) == total
    # the payments' identities are their own: one per transaction, none the group's
    assert len({transaction_facts(part).payment_id for part in parts}) == len(values)
    assert extract_facts(parsed).msg_id == transaction_facts(parts[0]).msg_id
