"""Plain document values <-> Firestore protobuf values, straight on the raw protobuf messages.

``google-cloud-firestore`` converts every value through proto-plus wrappers
(``_helpers.encode_value`` / ``decode_value``) and deep-copies a snapshot's data in
``to_dict``: about 12 µs of CPU per value, so a 250-value trader state costs ~3 ms
to encode and as much to read back. These functions build and read the underlying
protobuf messages (``Value._pb``) directly, with the same results for the types the
project stores (None, bool, int, float, str, bytes, datetime, dict, list/tuple);
anything else (GeoPoint, references, vectors, BSON maps) goes through the client's
own helpers, so nothing changes meaning.

Used by :meth:`bus.store.FirestoreStore.commit` (the LLM trader's decision write) and
:meth:`bus.store.FirestoreStore.get_all`.
"""

from __future__ import annotations

import datetime
from typing import Any

from google.cloud._helpers import _datetime_to_pb_timestamp
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.bson import _BSON_DECODERS
from google.cloud.firestore_v1.transforms import Sentinel, _NumericValue, _ValueList
from google.cloud.firestore_v1.types import document, write
from google.protobuf import struct_pb2

ValuePb = document.Value.pb()
WritePb = write.Write.pb()
_NULL = struct_pb2.NULL_VALUE


class NotPlain(TypeError):
    """A value this codec leaves to the client's helpers (a sentinel or transform inside the data)."""


def _fill(pb: Any, value: Any) -> None:
    """Set the raw ``Value`` message ``pb`` to ``value`` (as :func:`_helpers.encode_value` would)."""
    t = type(value)
    if t is str:
        pb.string_value = value
    elif t is float:
        pb.double_value = value
    elif t is int:
        pb.integer_value = value
    elif t is bool:
        pb.boolean_value = value
    elif value is None:
        pb.null_value = _NULL
    elif t is dict:
        fields = pb.map_value.fields
        pb.map_value.SetInParent()
        for k, v in value.items():
            _fill(fields[k], v)
    elif t is list or t is tuple:
        arr = pb.array_value
        arr.SetInParent()
        for v in value:
            _fill(arr.values.add(), v)
    elif t is datetime.datetime:
        pb.timestamp_value.CopyFrom(_datetime_to_pb_timestamp(value))
    elif isinstance(value, (Sentinel, _ValueList, _NumericValue)):
        raise NotPlain(f"{value!r} is a transform, not a value")
    else:  # subclasses (str enums, DatetimeWithNanoseconds), bytes, GeoPoint, references, ...
        pb.CopyFrom(_helpers.encode_value(value)._pb)


def set_write(name: str, data: dict[str, Any]) -> Any:
    """The raw ``Write`` replacing document ``name`` (its full resource name) by ``data``.

    Raises:
        NotPlain: ``data`` holds a sentinel or transform (use the client's ``set``).
        TypeError: a value Firestore cannot store.
    """
    w = WritePb()
    w.update.name = name
    fields = w.update.fields
    for k, v in data.items():
        _fill(fields[k], v)
    return w


def _bson_like(fields: Any) -> bool:
    """Whether a map is one the client decodes into something else than a dict (vector, BSON value)."""
    return "__type__" in fields or (len(fields) == 1 and next(iter(fields)) in _BSON_DECODERS)


def decode(pb: Any, client: Any) -> Any:
    """The Python value of the raw ``Value`` message ``pb`` (as :func:`_helpers.decode_value` returns it)."""
    kind = pb.WhichOneof("value_type")
    if kind == "string_value":
        return pb.string_value
    if kind == "double_value":
        return pb.double_value
    if kind == "integer_value":
        return pb.integer_value
    if kind == "boolean_value":
        return pb.boolean_value
    if kind == "null_value":
        return None
    if kind == "map_value":
        fields = pb.map_value.fields
        if _bson_like(fields):
            return _helpers.decode_value(pb, client)
        return {k: decode(v, client) for k, v in fields.items()}
    if kind == "array_value":
        return [decode(v, client) for v in pb.array_value.values]
    return _helpers.decode_value(pb, client)  # timestamps, bytes, references, geo points


def decode_fields(fields: Any, client: Any) -> dict[str, Any]:
    """A document's data from its raw ``fields`` map."""
    return {k: decode(v, client) for k, v in fields.items()}
