"""msgpack encoding of request and reply bodies (PROTOCOL.md section 2, values).

- ``bytes``/``bytearray``/``memoryview`` travel as msgpack bin, ``str`` as str.
- ``datetime`` travels as the msgpack timestamp extension (type -1). An aware
  datetime is converted to UTC; a naive one is taken to be UTC already (as
  ``datetime.utcnow()`` returns). Microseconds are kept exactly (no float
  round trip).
- Timestamps in replies and events (type -1, in any of its three forms)
  become aware ``datetime`` objects in UTC (``tzinfo=timezone.utc``).
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, List

import msgpack

UTC = _dt.timezone.utc
EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)



def timestamp_from_datetime(value: _dt.datetime) -> msgpack.Timestamp:
    """A datetime as a msgpack Timestamp (naive: taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return msgpack.Timestamp(seconds, delta.microseconds * 1000)


def datetime_from_timestamp(ts: msgpack.Timestamp) -> _dt.datetime:
    """A msgpack Timestamp as an aware UTC datetime (nanoseconds truncated to
    microseconds, PostgreSQL's precision)."""
    return EPOCH + _dt.timedelta(seconds=ts.seconds, microseconds=ts.nanoseconds // 1000)


def _default(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return timestamp_from_datetime(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"cannot encode a {type(value).__name__} as msgpack")


def packb(value: Any) -> bytes:
    """Encodes one value (a request body) as msgpack."""
    return msgpack.packb(value, default=_default, use_bin_type=True, datetime=False)


def _convert(value: Any) -> Any:
    if isinstance(value, msgpack.Timestamp):
        return datetime_from_timestamp(value)
    return value


def _object_hook(pairs: Dict[Any, Any]) -> Dict[Any, Any]:
    for k, v in pairs.items():
        if isinstance(v, msgpack.Timestamp):
            pairs[k] = datetime_from_timestamp(v)
    return pairs


def _list_hook(items: List[Any]) -> List[Any]:
    for i, v in enumerate(items):
        if isinstance(v, msgpack.Timestamp):
            items[i] = datetime_from_timestamp(v)
    return items


def unpackb(data: bytes) -> Any:
    """Decodes one msgpack value (a reply or event body): str as str, bin as
    bytes, timestamps as UTC datetimes, maps as dicts (any hashable key)."""
    value = msgpack.unpackb(data, raw=False, timestamp=0, strict_map_key=False, object_hook=_object_hook,
                            list_hook=_list_hook)
    return _convert(value)
