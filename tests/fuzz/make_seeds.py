#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/<target>/.

Run from anywhere; rerun after changing the samples. A tiny msgpack encoder
is included so that nothing beyond the Python standard library is needed,
and so that invalid encodings can be written on purpose.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def mp(v):
    """Minimal msgpack encoder for None, bool, int, float, str, bytes, list, dict, Ext."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, Ext):
        n = len(v.data)
        fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
        if n in fixed:
            return bytes([fixed[n]]) + struct.pack(">b", v.type) + v.data
        return b"\xc7" + bytes([n]) + struct.pack(">b", v.type) + v.data
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8", "surrogatepass")
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(v, bytes):
        return b"\xc6" + struct.pack(">I", len(v)) + v
    if isinstance(v, list):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return b"\xdf" + struct.pack(">I", len(v)) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


class Ext:
    def __init__(self, type_, data):
        self.type = type_
        self.data = data


def ts96(sec, nsec=0):
    return Ext(-1, struct.pack(">Iq", nsec, sec))


UUID = "0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9"

REQUESTS = {
    "ping": mp({"op": "ping"}),
    "ping_full": mp({"op": "ping", "v": 1, "id": 7, "timeout_ms": 500, "actor": UUID}),
    "create_user": mp({"op": "create_user", "id": "r1", "args": {
        "email": "alice@example.com", "password_hash": "$argon2id$v=19$x",
        "metadata": {"plan": "pro", "n": [1, 2.5, None, True], "deep": {"a": {"b": "c"}}}}}),
    "create_session": mp({"op": "create_session", "args": {
        "user_id": UUID, "ttl_s": 3600, "user_agent": "curl", "ip_address": "127.0.0.1"}}),
    "extend_session": mp({"op": "extend_session", "args": {"id": UUID, "expires_at": ts96(1700000000, 5)}}),
    "list_users": mp({"op": "list_users", "args": {"limit": 10, "after": None}}),
    "id_array": mp({"op": "get_user", "id": [1, "x", {"k": None}], "args": {"id": UUID}}),
    "v2": mp({"op": "ping", "v": 2}),
    "no_op": mp({"args": {}}),
    "not_map": mp(["op", "ping"]),
    "bad_actor": mp({"op": "ping", "actor": "nope"}),
    "int_key": b"\x82\xa2op\xa4ping\x01\x02",
    "args_int_key": b"\x82\xa2op\xa4ping\xa4args\x81\x01\x02",
    "metadata_bin": mp({"op": "update_user", "args": {"id": UUID, "metadata": {"k": b"\x00\x01"}}}),
    "metadata_nan": mp({"op": "update_user", "args": {"id": UUID, "metadata": {"k": float("nan")}}}),
    "huge_array_claim": b"\x81\xa2id\xdd\xff\xff\xff\xff",
    "huge_str_claim": b"\xdb\xff\xff\xff\xff",
    "deep": b"\x81\xa2id" + b"\x91" * 40 + b"\xc0",
    "truncated": mp({"op": "ping"})[:-2],
    "trailing": mp({"op": "ping"}) + b"\xc0",
    "never_used": b"\xc1",
    "empty": b"",
}

METADATA = {
    "empty": mp({}),
    "flat": mp({"s": "text", "i": -5, "u": 2**64 - 1, "f": 1.25, "b": False, "n": None}),
    "nested": mp({"a": [1, [2, [3, {"b": "c"}]]], "o": {}, "l": []}),
    "unicode": mp({"k": "日本語 ✓ é", "esc": "\"\\\n"}),
    "bin": mp({"k": b"\x00"}),
    "ext": mp({"k": Ext(5, b"x")}),
    "timestamp": mp({"k": ts96(0)}),
    "int_key": b"\x81\x01\xc0",
    "nan": mp({"k": float("nan")}),
    "inf": mp({"k": float("inf")}),
    "nul": mp({"k": "a\x00b"}),
    "bad_utf8": b"\x81\xa1k\xa2\xff\xfe",
    "deep": b"\x81\xa1k" * 40 + b"\xc0",
    "float32": b"\x81\xa1f\xca\x3f\x00\x00\x00",
    "dup_keys": b"\x82\xa1k\x01\xa1k\x02",
}

CONFIGS = {
    "defaults": open(os.path.join(HERE, "..", "..", "conf", "toriid.toml"), "rb").read(),
    "empty": b"",
    "small": b"[server]\nrequests = [\"tcp://127.0.0.1:7420\", \"ipc:///run/toriid/req\"]\n"
             b"request_timeout_ms = 250\n[log]\nlevel = \"debug\"\n",
    "database": b"[database]\nurl = \"postgresql://torii:pw@db/torii?sslmode=require\"\n"
                b"max_connections = 4\nmin_connections = 2\nssl_mode = \"verify-full\"\n",
    "syntax": b"[server\nrequests = 1\n",
    "unknown_section": b"[nope]\nx = 1\n",
    "unknown_key": b"[server]\nbogus = 1\n",
    "wrong_type": b"[audit]\nenabled = \"yes\"\n",
    "range": b"[server]\nrequest_timeout_ms = 0\n",
    "choice": b"[log]\nlevel = \"trace\"\n",
    "cross": b"[database]\nmax_connections = 1\nmin_connections = 5\n",
    "dotted": b"server.request_timeout_ms = 10\nlog.level = \"warn\"\n",
    "inline": b"server = { max_pending = 5 }\n",
    "array_of_tables": b"[[server]]\nmax_pending = 5\n",
    "nested_arrays": b"[server]\nrequests = [[[[[[[[\"x\"]]]]]]]]\n",
    "unicode_escape": b"[database]\ndata_dir = \"/srv/\\u00e9\\\"q\\\"\"\n",
}


def write(target, samples):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    for name, data in samples.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


write("fuzz_request", REQUESTS)
write("fuzz_metadata", METADATA)
write("fuzz_config", CONFIGS)
