#!/usr/bin/env python3
"""Verifies an Aegis audit trail without Aegis: the format of docs/audit.md, in ~100 lines.

Usage: verify_trail.py DIR [--anchor CHECKPOINT_LINE]
Needs Python 3.8+ and the `cryptography` package (Ed25519). Exit status 0 when the trail
verifies, 1 with the first problem on stderr otherwise. It checks the same rules as
`aegis audit verify`, with less detailed messages.
"""
import hashlib
import json
import os
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNED = ("chain", "hash", "key_id", "reason", "seq", "time")


class Bad(Exception):
    pass


def verify(d, anchor=None):
    chain = json.load(open(os.path.join(d, "chain.json")))
    pub = bytes.fromhex(chain["public_key"])
    if hashlib.sha256(pub).hexdigest()[:16] != chain["key_id"]:
        raise Bad("chain.json: key_id is not the SHA-256 prefix of public_key")
    key = Ed25519PublicKey.from_public_bytes(pub)

    def check_checkpoint(cp, where):
        if cp["chain"] != chain["chain"] or cp["key_id"] != chain["key_id"]:
            raise Bad(f"{where}: checkpoint of another chain or key")
        message = json.dumps({k: cp[k] for k in SIGNED}, sort_keys=True, separators=(",", ":"))
        try:
            key.verify(bytes.fromhex(cp["sig"]), message.encode())
        except InvalidSignature:
            raise Bad(f"{where}: signature of checkpoint at record {cp['seq']} does not verify")

    anchors = []
    head_path = os.path.join(d, "head.json")
    if os.path.exists(head_path):
        anchors.append(json.loads(open(head_path).read())["checkpoint"])
    if anchor:
        anchors.append(json.loads(anchor)["checkpoint"])
    for a in anchors:
        check_checkpoint(a, "anchor")
    hash_at = {a["seq"]: None for a in anchors}  # the hashes of the records anchors cover
    hash_at[0] = chain["chain"]

    names = sorted((f for f in os.listdir(d) if re.fullmatch(r"\d{6,}\.log", f)), key=lambda f: int(f[:-4]))
    seq, prev, last = 0, chain["chain"], "start"  # last: start | segment | record | <reason>
    for i, name in enumerate(names, 1):
        if int(name[:-4]) != i:
            raise Bad(f"segment {i:06d}.log is missing")
        lines = open(os.path.join(d, name), "rb").read().split(b"\n")
        torn = lines.pop()  # the bytes after the last newline: a crash mid-write
        while lines and lines[-1].strip(b"\0") == b"":  # NUL-filled lines a crash can leave
            torn = lines.pop() + torn
        if torn and i != len(names):
            raise Bad(f"{name}: unfinished line in a segment that is not the last")
        if not lines:
            if i != len(names):
                raise Bad(f"{name}: no header")
            break  # created by a writer that crashed at once
        for n, raw in enumerate(lines, 1):
            where = f"{name} line {n} (record {seq + 1})"
            obj = json.loads(raw)
            if n == 1:
                h = obj["segment"]
                if h["chain"] != chain["chain"]:
                    raise Bad(f"{where}: segment from another chain")
                if h["index"] != i or h["first_seq"] != seq + 1 or h["prev"] != prev:
                    raise Bad(f"{where}: the segment does not continue the chain")
                last = "start" if last == "start" else "segment"
            elif "checkpoint" in obj:
                cp = obj["checkpoint"]
                check_checkpoint(cp, where)
                if cp["seq"] != seq or cp["hash"] != prev:
                    raise Bad(f"{where}: checkpoint at record {cp['seq']} does not match the trail")
                if last == "roll" or (last == "close" and cp["reason"] != "open") or \
                        (last == "start" and cp["reason"] != "open"):
                    raise Bad(f"{where}: checkpoint out of place")
                last = cp["reason"]
            else:
                body = raw[: raw.rindex(b',"hash":"')]
                if hashlib.sha256(body).hexdigest() != obj["hash"]:
                    raise Bad(f"{where}: record altered (its hash does not match its content)")
                if obj["seq"] != seq + 1 or obj["prev"] != prev:
                    raise Bad(f"{where}: record {seq + 1} missing, out of order or duplicated")
                if last in ("start", "close", "roll"):
                    raise Bad(f"{where}: record after a {last} checkpoint")
                seq, prev, last = obj["seq"], obj["hash"], "record"
                if seq in hash_at:
                    hash_at[seq] = prev
        if i != len(names) and last != "roll":
            raise Bad(f"{name}: does not end with a roll checkpoint")
    for a in anchors:
        if a["seq"] > seq:
            raise Bad(f"records missing after record {seq}: a checkpoint covers record {a['seq']}")
        if hash_at[a["seq"]] != a["hash"]:
            raise Bad(f"record {a['seq']} does not match its checkpoint")
    if not os.path.exists(head_path) and seq > 0 and not anchor:
        raise Bad("head.json is missing")
    state = "closed cleanly" if last == "close" else "NOT closed (crash, truncation or live writer)"
    print(f"ok: {seq} records in {len(names)} segments, {state}; key {chain['key_id']}")


if __name__ == "__main__":
    args = sys.argv[1:]
    anchor = None
    if "--anchor" in args:
        k = args.index("--anchor")
        anchor = args[k + 1]
        del args[k : k + 2]
    try:
        verify(args[0], anchor)
    except (Bad, KeyError, ValueError, OSError) as e:
        print(f"verify_trail: {e}", file=sys.stderr)
        sys.exit(1)
