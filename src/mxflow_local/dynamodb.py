"""Gap filled: DynamoDB applies the writes to one item one at a time; moto's in-process backend does not.

moto checks a write's condition and then applies it in Python, and `transact_write_items` undoes a
failed transaction by putting back the items as they were before it started. Two threads can therefore
interleave: a failing transaction can restore an item over a concurrent winner's committed write, and
two conditional writes can both pass their check. Handlers run on threads in the local runtime, so
without this, two concurrent decisions on one payment could both "win" locally where AWS lets exactly
one. One process-wide lock around moto's DynamoDB item operations restores the service's behaviour;
the conditions are still what decides who wins.

The lock covers moto's response handlers too (`DynamoHandler`): a read returns the live item, which the
handler serialises after the backend call; an update in another thread meanwhile made that fail with
"dictionary changed size during iteration" (an HTTP 500 locally, never in AWS).

Two costs of moto's `transact_write_items` are removed as well. It backs up every table a transaction
names with `copy.deepcopy` of the whole table before it starts (to put the table back if the transaction
is cancelled), so each transaction cost time in proportion to everything the table held: the local
runtime slowed down with every payment it kept (10 payments took 11 s on an empty table, 32 s with 40
payments in it). And moto keeps every model object it ever made in class-level lists
(`instances_tracked`, for its dashboard under /moto-api/, which the local runtime does not serve), so
each of those copies, of the table and of every item in it, was kept for good: the process grew by tens
of megabytes per payment (two gigabytes after sixty). Here a transaction backs up only the items it
names and puts them back (with the table's stream) when it is cancelled (`_transact_write_items`), and
DynamoDB's model objects are not tracked (`untrack_models`).

One cost of moto's responses is removed (speed, not semantics: `patch_json_responses`). moto 5.2
serialises every response by walking the operation's output shape with attribute pickers (about
half of the CPU of a GetItem of a payment's item, whose history and messages are nested maps and
lists). The item operations' results are already in the wire form (the AttributeValue JSON that
DynamoDB returns): their answer is `json.dumps` of the result, the body moto's own serialiser
produces for them (tests/local/test_canary.py compares the two). So is DynamoDB Streams' GetRecords,
the journal's poller's call (mxflow_local/stream_events.py), whose records are the items' AttributeValue
JSON and one timestamp each, written as moto's serialiser writes it (one GetRecords of 1,000 records of
payment-like items, NEW_AND_OLD_IMAGES, in one process: 2.79 s of CPU through moto's serialiser, 0.21 s
so). Their requests likewise: moto's shape
parser walked every attribute value of the request to decode base64 blobs; they are `json.loads` of the
body with the blobs (AttributeValue B and BS, wherever the input shape can hold them) decoded by a walker
made once per operation from the same shape (`patch_json_requests`; the canary compares the two).

One cost of moto's projections is removed (speed, not semantics: `patch_projection`). `Item.project` (a
ProjectionExpression, and every index's KEYS_ONLY or INCLUDE projection of a Query) converted the whole
item to plain JSON once per projected path: a payment's item (history, messages, facts) four times for
each item a Query on the InFlight index returns, seven times for each item the sampler reads
(functions/sampler: 16 such Queries and a BatchGetItem of up to 1,600 items a minute, about 11 s of the
runtime's CPU a minute once 1,600 payments are in flight, measured with bench/bulk.py). A path reads one
top-level attribute, so only that one is converted, afresh for each path as before.

Two costs of moto's Query on an index are removed (speed, not semantics: `patch_index_query`). moto's
`Table.query` reads `all_items()`, every item of the table sorted by its keys (DynamoType comparisons,
`cast_value` on both sides of each), keeps those whose index key matches, then sorts those by the index's
keys: each of the sampler's 16 InFlight Queries walked and sorted every payment the table holds, under
LOCK (1.36 s of CPU for 16 such Queries on a table of 10,000 payment-like items, 0.67 s at 2,000, timed
in one process with moto's own query). Here moto's
own query runs on the items whose index hash key matches (DynamoType.__eq__, as moto compares), and sorts
them by their keys' `cast_value`s when each key has one type among them (DynamoType's comparisons are
then those of the cast values); else moto's own sort, on those items in `all_items` order. And
`DynamoType.size` (every item a Query reads, for its 1 MB page, twice) wrapped each map value in a new
DynamoType, a copy of everything below it, at every level (`_size`: the same sum without the copies).
"""
from __future__ import annotations

import base64
import copy
import datetime
import json
import re
import threading

# Every backend operation that reads or writes items (reads too: a rolled-back transaction must not be seen).
ITEM_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item",
                   "get_item", "transact_get_items", "query", "scan")

# The response handlers of those operations: each calls the backend, then serialises what it returned.
HANDLER_OPERATIONS = ITEM_OPERATIONS + ("batch_get_item",)

# Item operations whose results are in the wire form already (AttributeValue JSON, numbers, strings).
JSON_RESPONSE_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
                                      "BatchGetItem", "BatchWriteItem", "TransactWriteItems", "TransactGetItems"})
# The stream's records likewise (moto/dynamodb/models/table.py StreamRecord: the items' AttributeValue JSON),
# with one timestamp each (ApproximateCreationDateTime, a datetime: `_blob_or_time`).
JSON_STREAM_OPERATIONS = frozenset({"GetRecords"})

LOCK = threading.RLock()
_LIST_ITEM = re.compile(r"(.+)\[(\d+)\]$")   # moto's find_nested_key: a path's `name[index]`
_INSTALLED = False


class _NotTracked(list):
    """A model class's `instances_tracked` that keeps nothing."""

    def append(self, _instance) -> None:
        return None


def untrack_models() -> None:
    """Stop moto from keeping every DynamoDB model object (tables, their backups, items, stream
    records) in its class-level lists. Again after each moto reset, which puts plain lists back."""
    from moto.core.model_instances import model_data
    from moto.dynamodb import models  # noqa: F401 - registers the DynamoDB model classes in model_data

    for model in model_data["dynamodb"].values():
        if not isinstance(model.instances_tracked, _NotTracked):
            model.instances_tracked = _NotTracked()


_BACKUP = threading.local()   # .by_item: a transaction of this thread backs up its items, not its tables


def _table_deepcopy(table, memo):
    """Table.__deepcopy__: the table itself while `_transact_write_items` keeps the backup (so moto's
    whole-table backup costs nothing, and its rollback puts back the same table); else a deep copy as
    `copy.deepcopy` makes one (moto's table backups, restore_table_*)."""
    if getattr(_BACKUP, "by_item", False):
        return table
    return copy._reconstruct(table, memo, *table.__reduce_ex__(4))  # copy.deepcopy's own path


def _touched_items(backend, transact_items) -> list[tuple]:
    """(table, hash key, range key, a copy of the item or None, the stream's length) for each item the
    transaction names; entries moto will refuse are left to moto."""
    backups = []
    for entry in transact_items:
        try:
            (_, operation), = entry.items()
            table = backend.tables.get(operation.get("TableName"))
            if table is None:
                continue
            keys = operation.get("Key") or {name: operation["Item"][name]
                                            for name in (table.hash_key_attr, table.range_key_attr) if name}
            hash_key, range_key = backend.get_keys_value(table, keys)
        except Exception:  # noqa: BLE001 - malformed entries are moto's to refuse, with its own error
            continue
        stream = table.stream_shard
        backups.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key)),
                        len(stream.items) if stream is not None else None))
    return backups


def _restore(backups) -> None:
    for table, hash_key, range_key, item, stream_length in reversed(backups):
        if range_key is not None:
            if item is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        if stream_length is not None and table.stream_shard is not None:
            del table.stream_shard.items[stream_length:]


def _transact_write_items(self, transact_items, *args, __original, **kwargs):
    """moto's transaction, with a backup of the items it names instead of a deep copy of each table.
    Called under LOCK: nothing else reads or writes items meanwhile."""
    backups = _touched_items(self, transact_items)
    _BACKUP.by_item = True
    try:
        return __original(self, transact_items, *args, **kwargs)
    except BaseException:
        _restore(backups)
        raise
    finally:
        _BACKUP.by_item = False


def _serialise(cls, names) -> None:
    for name in names:
        original = getattr(cls, name, None)
        if original is None:
            continue

        def serialised(self, *args, __original=original, __name=name, **kwargs):
            with LOCK:
                if __name == "transact_write_items" and cls.__name__ == "DynamoDBBackend":
                    return _transact_write_items(self, *args, __original=__original, **kwargs)
                return __original(self, *args, **kwargs)

        serialised.__wrapped__ = original
        setattr(cls, name, serialised)


def _blob(value):
    """json.dumps' fallback: a binary value (B, BS) as base64, as moto's serialiser writes a blob; any
    other type is not plain JSON (TypeError: moto serialises that result itself)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)


def _blob_or_time(value):
    """_blob, and a datetime as moto's serialiser writes a timestamp of the JSON protocol (its own
    TimestampSerializer: seconds since the epoch, milliseconds as a fraction)."""
    if isinstance(value, datetime.datetime):
        from moto.core.serialize import TimestampSerializer

        unix = TimestampSerializer.TIMESTAMP_FORMAT_UNIX
        return TimestampSerializer(unix)._convert_timestamp_to_str(value, unix)
    return _blob(value)


def stream_records(records: list) -> list[dict]:
    """Records of moto's stream shard (moto/dynamodb/models/table.py StreamRecord) as DynamoDB Streams'
    GetRecords answers them: a copy in its JSON (binary values base64, ApproximateCreationDateTime in epoch
    seconds), written as `json_response` writes GetRecords' body (the local journal's poller,
    mxflow_local/stream_events.py, reads these without a client)."""
    return json.loads(json.dumps(records, default=_blob_or_time, allow_nan=False))


def json_response(context, result):
    """(status, headers, body) of an item operation's (or GetRecords') result, or None when moto must
    serialise it (a result that is not plain JSON, or keys that are not the output shape's members)."""
    operation = context.operation_model
    service = context.service_model.service_name
    if service == "dynamodb" and operation.name in JSON_RESPONSE_OPERATIONS:
        default = _blob
    elif service == "dynamodbstreams" and operation.name in JSON_STREAM_OPERATIONS:
        default = _blob_or_time
    else:
        return None
    shape = operation.output_shape
    if type(result) is not dict or shape is None or not set(result) <= set(shape.members):
        return None
    try:
        body = json.dumps(result, default=default, allow_nan=False)
    except (TypeError, ValueError):
        return None
    version = context.service_model.metadata.get("jsonVersion", "1.0")
    return operation.http.get("responseCode", 200), {"Content-Type": f"application/x-amz-json-{version}"}, body


def patch_json_responses() -> None:
    """Answer DynamoDB's item operations with json.dumps of their result (see the module's docstring)."""
    from moto.core.responses import ActionResult

    original = ActionResult.execute_result
    if getattr(original, "_mxflow_json", False):
        return

    def execute_result(self, context):
        answer = json_response(context, self.result)
        return answer if answer is not None else original(self, context)

    execute_result._mxflow_json = True
    execute_result.__wrapped__ = original
    ActionResult.execute_result = execute_result


def _has_blob(shape, memo: dict) -> bool:
    """Whether a blob can occur in a value of this shape (recursive shapes: AttributeValue's M and L)."""
    if shape.type_name == "blob":
        return True
    if shape.type_name not in ("structure", "list", "map"):
        return False
    if shape.name in memo:
        return memo[shape.name]
    memo[shape.name] = False   # a cycle adds nothing the other members do not
    if shape.type_name == "structure":
        found = any(_has_blob(member, memo) for member in shape.members.values())
    else:
        found = _has_blob(shape.member if shape.type_name == "list" else shape.value, memo)
    memo[shape.name] = found
    return found


def _request_decoder(shape, memo: dict, blobs: dict):
    """A function giving a JSON value of `shape` as moto's request parser gives it (base64 blobs decoded
    to bytes), descending only where a blob can be; None when nothing below is a blob."""
    if not _has_blob(shape, blobs):
        return None
    if shape.type_name == "blob":
        return base64.b64decode
    if shape.name in memo:
        return memo[shape.name]
    built: list = []
    memo[shape.name] = lambda value: built[0](value)   # recursive shapes reach this before it is built
    if shape.type_name == "structure":
        members = {member.serialization.get("name", name): decode for name, member in shape.members.items()
                   if (decode := _request_decoder(member, memo, blobs)) is not None}

        def decode(value):
            if not isinstance(value, dict):
                return value
            out = dict(value)
            for name, member_decode in members.items():
                inner = out.get(name)
                if inner is not None:
                    out[name] = member_decode(inner)
            return out
    elif shape.type_name == "list":
        item = _request_decoder(shape.member, memo, blobs)

        def decode(value):
            return [item(v) for v in value] if isinstance(value, list) else value
    else:
        entry = _request_decoder(shape.value, memo, blobs)

        def decode(value):
            return {k: entry(v) for k, v in value.items()} if isinstance(value, dict) else value
    built.append(decode)
    return memo[shape.name]


_MOTO_PARSES = object()
_DECODERS: dict[str, tuple] = {}   # operation -> (its input's member names, decoder | None | _MOTO_PARSES)


def json_request(handler, request):
    """The parameters of an item operation's JSON request as moto's shape parser gives them, or None when
    moto must parse it (another operation, a body that is not a JSON object, a member unknown to the
    shape, which the parser drops, or a member renamed on the wire)."""
    operation = handler._get_action()
    if operation not in JSON_RESPONSE_OPERATIONS:
        return None
    try:
        params = json.loads(request.data)
    except (TypeError, ValueError):
        return None
    if type(params) is not dict:
        return None
    known = _DECODERS.get(operation)
    if known is None:
        from moto.core.responses import get_service_model

        shape = get_service_model("dynamodb").operation_model(operation).input_shape
        renamed = any(member.serialization.get("name", name) != name for name, member in shape.members.items())
        known = _DECODERS[operation] = (frozenset(shape.members),
                                        _MOTO_PARSES if renamed else _request_decoder(shape, {}, {}))
    members, decoder = known
    if decoder is _MOTO_PARSES or not set(params) <= members:
        return None
    return decoder(params) if decoder is not None else params


def patch_json_requests() -> None:
    """Parse DynamoDB's item operation requests with json.loads and a decoder of their blobs (speed, not
    semantics: moto's shape parser walked every attribute value of every item; tests/local/test_canary.py
    compares the two)."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.parse_parameters
    if getattr(original, "_mxflow_json", False):
        return

    def parse_parameters(self, request):
        params = json_request(self, request)
        if params is None:
            return original(self, request)
        self.params = params

    parse_parameters._mxflow_json = True
    parse_parameters.__wrapped__ = original
    DynamoHandler.parse_parameters = parse_parameters


def _project(self, projection_expressions):
    """moto's Item.project (moto/dynamodb/models/dynamo_type.py) converting, for each path, only the
    top-level attribute the path starts with (`find_nested_key` reads nothing else: `name` or
    `name[index]`), instead of the whole item each time."""
    from moto.dynamodb.models import dynamo_type

    result: dict = {}
    for expression in projection_expressions:
        listed = _LIST_ITEM.match(expression[0])
        name = listed.group(1) if listed else expression[0]
        attribute = self.attrs.get(name)
        regular = {} if attribute is None else {name: dynamo_type.deserializer.deserialize(attribute.to_regular_json())}
        dynamo_type.merge_dicts(result, dynamo_type.find_nested_key(expression, regular))
    return dynamo_type.Item(hash_key=self.hash_key, range_key=self.range_key,
                            attrs=dynamo_type.serializer.serialize(result)["M"])


def patch_projection() -> None:
    """Project an item converting only the attributes its paths name (see the module's docstring)."""
    from moto.dynamodb.models.dynamo_type import Item

    if getattr(Item.project, "_mxflow_projection", False):
        return
    original = Item.project
    _project._mxflow_projection = True
    _project.__wrapped__ = original
    Item.project = _project


_QUERY = threading.local()   # .table, .matching: the index query this thread is in (`_index_query`)


def _all_items(self, *, __original):
    """Table.all_items: in an index query of this thread, the items whose index hash key matches."""
    if getattr(_QUERY, "table", None) is self:
        return _QUERY.matching
    return __original(self)


def _sorted_items(self, hash_key_attrs, range_key_attrs, items, *, __original):
    """Table.sorted_items: in an index query of this thread, by the keys' cast values when each key has one
    type (S or N) among the items, the order moto's DynamoType comparisons give (equal: same cast value;
    less: cast value less); else moto's own sort of the items in `all_items` order (`_all_items` gives
    them unsorted)."""
    if getattr(_QUERY, "table", None) is not self:
        return __original(self, hash_key_attrs, range_key_attrs, items)
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    try:
        uniform = all({item.attrs[attr].type for item in items} in ({"S"}, {"N"}, set()) for attr in attrs)
    except KeyError:
        uniform = False   # moto's sort raises its own KeyError
    if not uniform:
        items.sort(key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)   # all_items' order
        return __original(self, hash_key_attrs, range_key_attrs, items)
    items.sort(key=lambda x: tuple(x.attrs[attr].value if x.attrs[attr].type == "S" else x.attrs[attr].cast_value
                                   for attr in attrs))
    return items


def _index_query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                 projection_expressions, index_name=None, consistent_read=False, filter_expression=None,
                 hash_key_conditions=None, range_key_conditions=None, *, __original, **filter_kwargs):
    """moto's Table.query, on an index with hash key conditions: run on the items whose index hash keys
    match instead of every item of the table (see the module's docstring)."""
    args = (self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
            projection_expressions, index_name, consistent_read, filter_expression)
    kwargs = dict(hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions, **filter_kwargs)
    if not index_name or not hash_key_conditions or getattr(_QUERY, "table", None) is not None:
        return __original(*args, **kwargs)
    conditions = dict(hash_key_conditions).items()   # as moto's: the last condition on a name counts
    rows = self.items.values()
    if self.range_key_attr:
        rows = [item for hash_set in rows for item in hash_set.values()]
    _QUERY.matching = [item for item in rows   # moto's own DynamoType.__eq__, as its query compares them
                       if all((found := item.attrs.get(name)) is not None and found == value
                              for name, value in conditions)]
    _QUERY.table = self
    try:
        return __original(*args, **kwargs)
    finally:
        _QUERY.table = _QUERY.matching = None


def _size(self) -> int:
    """DynamoType.size (moto/dynamodb/models/dynamo_type.py) without wrapping each map value in a new
    DynamoType (a copy of all below it) first: the same sum."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    kind, value = self.type, self.value
    if kind == "S" and type(value) is str:
        return bytesize(value)
    if kind == "N":
        return len(str(value))
    if kind == "L":
        return sum(_size(v) if type(v) is DynamoType else v.size() for v in value)
    if kind == "M":
        return sum(bytesize(k) + (_size(v) if type(v) is DynamoType else DynamoType(v).size())
                   for k, v in value.items())
    return _size.__wrapped__(self)   # sets, binary, booleans, NULL: moto's own


def patch_index_query() -> None:
    """Query an index over the items its hash key matches, and size items without copies (see the
    module's docstring)."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_mxflow_index", False):
        return
    for name, replacement in (("query", _index_query), ("all_items", _all_items), ("sorted_items", _sorted_items)):
        original = getattr(Table, name)

        def patched(self, *args, __replacement=replacement, __original=original, **kwargs):
            return __replacement(self, *args, __original=__original, **kwargs)

        patched._mxflow_index = True
        patched.__wrapped__ = original
        setattr(Table, name, patched)
    _size.__wrapped__ = DynamoType.size
    DynamoType.size = _size


_PLAIN_NODES: dict[type, bool] = {}   # Node classes that copy.deepcopy copies by their __dict__ (`_plain_node`)


def _plain_node(cls) -> bool:
    """A class copy.deepcopy copies as a plain object: a new instance from cls.__new__ whose __dict__ is the
    deep copy of the original's (object's own __reduce_ex__ and __getstate__, no __deepcopy__, no slots)."""
    plain = _PLAIN_NODES.get(cls)
    if plain is None:
        plain = _PLAIN_NODES[cls] = (cls.__reduce_ex__ is object.__reduce_ex__ and cls.__getstate__ is object.__getstate__
                                     and getattr(cls, "__deepcopy__", None) is None
                                     and not any("__slots__" in vars(base) for base in cls.__mro__))
    return plain


def _copy_tree(value, memo: dict, node):
    """copy.deepcopy of a parsed expression's tree (moto/dynamodb/parsing/ast_nodes.py: `node` classes with
    `type`, `children` and `parent`; leaves are strings, ints and booleans), done as deepcopy does it for
    plain objects (the new node is in `memo` before its attributes are copied, so `parent` maps to the new
    parent) without its generic __reduce_ex__ path; anything else goes to copy.deepcopy with the same memo."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is list:
        copied = memo.get(id(value))
        if copied is None:
            copied = memo[id(value)] = []
            copied.extend(_copy_tree(item, memo, node) for item in value)
        return copied
    if not isinstance(value, node) or not _plain_node(kind):
        return copy.deepcopy(value, memo)
    copied = memo.get(id(value))
    if copied is None:
        copied = memo[id(value)] = kind.__new__(kind)
        copied.__dict__.update({name: _copy_tree(attr, memo, node) for name, attr in value.__dict__.items()})
    return copied


def _deepcopy(value, memo=None):
    """moto.dynamodb.parsing.validators' deepcopy (the Validator's copy of the expression it validates, and
    list_append's copy of a list value): `_copy_tree`."""
    from moto.dynamodb.parsing.ast_nodes import Node

    return _copy_tree(value, {} if memo is None else memo, Node)


def _traversal_map(traverser) -> tuple:
    """A DepthFirstTraverser's `_processing_map()` (moto/dynamodb/parsing/ast_nodes.py), made once per
    traverser: each returns a dict literal of node classes to its own bound methods."""
    made = traverser.__dict__.get("_mxflow_processing_map")
    if made is None:
        processing_map = traverser._processing_map()
        made = traverser.__dict__["_mxflow_processing_map"] = (processing_map, tuple(processing_map))
    return made


def _nodes_to_be_processed(self):
    """DepthFirstTraverser.nodes_to_be_processed: the classes of `_processing_map`, in its order."""
    return _traversal_map(self)[1]


def _process(self, node):
    """DepthFirstTraverser.process: the first class of `_processing_map` the node is an instance of."""
    for class_key, processor in _traversal_map(self)[0].items():
        if isinstance(node, class_key):
            return processor(node)
    return None


def _count_actions(self, node):
    """ActionCountValidator.traverse (moto/dynamodb/parsing/validators.py) in one pass: moto's traversal
    visits the tree's nodes depth first and, for each UpdateExpression node after its children, counts the
    ADD, REMOVE and SET clauses `find_clauses` finds below it (a walk of its subtree, three times: a tree
    of n nodes was walked about n times), raising TooManyClauses for the first kind found more than once.
    Here each node's three counts are summed from its children's, by find_clauses' own rule (a child of the
    kind counts one; a child that is an Expression or an UpdateExpressionFunction adds its own counts), and
    checked in the same order at the same nodes; the tree is returned unchanged, as moto's returns it."""
    from moto.dynamodb.exceptions import TooManyClauses
    from moto.dynamodb.parsing import ast_nodes

    kinds = ((ast_nodes.UpdateExpressionAddClause, "ADD"), (ast_nodes.UpdateExpressionRemoveClause, "REMOVE"),
             (ast_nodes.UpdateExpressionSetClause, "SET"))
    nested = (ast_nodes.Expression, ast_nodes.UpdateExpressionFunction)

    def visit(current) -> list[int]:
        counts = [0, 0, 0]
        for child in current.children or []:
            below = visit(child) if isinstance(child, ast_nodes.Node) else None
            for k, (kind, _) in enumerate(kinds):
                if type(child) is kind:
                    counts[k] += 1
                elif below is not None and isinstance(child, nested):
                    counts[k] += below[k]
        if isinstance(current, ast_nodes.UpdateExpression):
            for count, (_, name) in zip(counts, kinds):
                if count > 1:
                    raise TooManyClauses(name)
        return counts

    if isinstance(node, ast_nodes.Node):
        visit(node)
    return node


def patch_update_expressions() -> None:
    """Four costs of an UpdateItem's expression are removed (speed, not semantics; tests/local/test_canary.py
    compares with moto's own). moto parsed each UpdateExpression twice per call (the handler, for the names
    and values it uses, then the backend), and each parse gives a new tree that nothing changes: the handler
    reads it (`find_clauses`), the backend hands it to UpdateExpressionValidator, which validates a
    deepcopy of it; here a parse is kept per expression string (mxflow writes a few shapes of expression,
    with placeholders). That deepcopy went through copy's generic __reduce_ex__ path for every node
    (`_copy_tree`: the same copy). And each of the validator's ten traversals called its `_processing_map()`
    (a new dict) twice for every node it visited; here once per traversal. The first of them, the clause
    count, walked each node's subtree again (`_count_actions`: one walk)."""
    import functools

    from moto.dynamodb.parsing import ast_nodes, expressions, validators

    parser = expressions.UpdateExpressionParser
    if getattr(parser.make, "_mxflow_cached", False):
        return
    parse = functools.lru_cache(maxsize=256)(parser.make.__func__)

    def make(cls, expression_str):
        return parse(cls, expression_str)

    make._mxflow_cached = True
    make.__wrapped__ = parser.make.__func__
    parser.make = classmethod(make)
    validators.deepcopy = _deepcopy
    traverser = ast_nodes.DepthFirstTraverser
    _nodes_to_be_processed.__wrapped__ = traverser.nodes_to_be_processed
    _process.__wrapped__ = traverser.process
    traverser.nodes_to_be_processed = _nodes_to_be_processed
    traverser.process = _process
    _count_actions.__wrapped__ = validators.ActionCountValidator.traverse
    validators.ActionCountValidator.traverse = _count_actions


def install() -> threading.RLock:
    """Serialise moto's DynamoDB item operations and their responses (once per process); returns the lock."""
    global _INSTALLED
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    with LOCK:
        untrack_models()
        if not _INSTALLED:
            _serialise(DynamoDBBackend, ITEM_OPERATIONS)
            _serialise(DynamoHandler, HANDLER_OPERATIONS)
            from moto.dynamodb.models.table import Table

            Table.__deepcopy__ = _table_deepcopy
            patch_json_responses()
            patch_json_requests()
            patch_projection()
            patch_index_query()
            patch_update_expressions()
            _INSTALLED = True
    return LOCK
