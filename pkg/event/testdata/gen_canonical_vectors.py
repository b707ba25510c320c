#!/usr/bin/env python3
"""Generates canonical_vectors.json: JSON inputs with the canonical text and
payload hash the Python reference computes for them, i.e.

    json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

encoded as UTF-8 and hashed with SHA-256. canonical_vectors_test.go checks
dg's CanonicalJSON and PayloadHash against every vector. Deterministic (fixed
seed); rerun with `python3 gen_canonical_vectors.py > canonical_vectors.json`.
"""
import hashlib
import json
import random

rng = random.Random(20251231)
CHARS = (
    [chr(c) for c in range(0x20)]
    + list("azAZ09 _-:/\\\"'<>&{}[],.")
    + ["\x7f", "\x80", "\xa0", "é", "ß", "\u0130", "\u2028", "\u2029", "中", "\ufeff",
       "\uffff", "😀", "\U0010ffff", "\U0001f468\u200d\U0001f469"]
)


def rstr(maxlen=8):
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, maxlen)))


def rint():
    kind = rng.randint(0, 3)
    if kind == 0:
        return rng.randint(-10, 10)
    if kind == 1:
        return rng.randint(-(2**63), 2**63)
    return rng.randint(-(10**45), 10**45)


def rvalue(depth):
    kinds = ["str", "int", "bool", "null"]
    if depth < 4:
        kinds += ["obj", "arr"] * 2
    k = rng.choice(kinds)
    if k == "str":
        return rstr()
    if k == "int":
        return rint()
    if k == "bool":
        return rng.random() < 0.5
    if k == "null":
        return None
    if k == "arr":
        return [rvalue(depth + 1) for _ in range(rng.randint(0, 4))]
    return {rstr(4): rvalue(depth + 1) for _ in range(rng.randint(0, 5))}


vectors = []
for i in range(300):
    v = {rstr(4): rvalue(1) for _ in range(rng.randint(0, 6))}
    text = json.dumps(v, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]))
    canon = json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()
    vectors.append({"input": text, "canonical": canon, "payload_hash": digest})

print(json.dumps({"generator": "gen_canonical_vectors.py", "vectors": vectors}, indent=1))
