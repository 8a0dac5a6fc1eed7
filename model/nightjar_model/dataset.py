"""Joins the sensor's feature lines with nightjar-flood's labels by 5-tuple and stores one
compressed array file per corpus. Nothing is recomputed: the arrays are the sensor's floats."""

import csv
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .schema import CLASSES, load_schema


def build(features: Path, labels: Path, out: Path, session: str) -> dict:
    schema = load_schema()
    n_static = len(schema["static_features"])
    seq_len = schema["sequence_length"]
    by_key = {}
    with open(labels, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["client_ip"], int(row["client_port"]), row["server_ip"], int(row["server_port"]))
            by_key[key] = row
    static, seq, tokens, y, family, profile, client, server = [], [], [], [], [], [], [], []
    unlabelled = 0
    found = set()
    with open(features) as f:
        for line in tqdm(f, desc=f"reading {features.name}", unit=" flows"):
            j = json.loads(line)
            if j["schema_version"] != schema["schema_version"]:
                raise SystemExit(f"{features}: schema_version {j['schema_version']}, model/ expects {schema['schema_version']}")
            key = (j["client_ip"], j["client_port"], j["server_ip"], j["server_port"])
            row = by_key.get(key)
            if row is None:
                unlabelled += 1
                continue
            found.add(key)
            s = j["static_features"]
            if len(s) != n_static or len(j["packets"]) != seq_len or len(j["records"]) != seq_len:
                raise SystemExit(f"{features}: feature shape differs from feature_schema.json")
            static.append(s)
            seq.append([p + r for p, r in zip(j["packets"], j["records"])])
            tokens.append(j["url_tokens"])
            y.append(CLASSES.index(row["class"]))
            family.append(row["family"])
            profile.append(row.get("profile", ""))
            client.append(j["client_ip"])
            server.append(j["server_ip"])
    missing = len(by_key) - len(found)
    np.savez_compressed(
        out,
        static=np.asarray(static, dtype=np.float32),
        seq=np.asarray(seq, dtype=np.float32),
        tokens=np.asarray([json.dumps(t) for t in tokens]),
        y=np.asarray(y, dtype=np.int64),
        family=np.asarray(family),
        profile=np.asarray(profile),
        client=np.asarray(client),
        server=np.asarray(server),
        session=np.asarray([session] * len(y)),
    )
    summary = {"flows": len(y), "unlabelled_flows_skipped": unlabelled, "labelled_flows_missing": missing,
               "per_class": {c: int((np.asarray(y) == i).sum()) for i, c in enumerate(CLASSES)}}
    print(json.dumps(summary))
    return summary


def load(path: Path) -> dict:
    d = dict(np.load(path, allow_pickle=False))
    d["tokens"] = [json.loads(t) for t in d["tokens"]]
    return d
