"""Joins the sensor's feature lines with nightjar-flood's labels by 5-tuple, or takes the
labels that `corpus` wrote into its feature lines, and stores one compressed array file per
corpus. Nothing is recomputed: the arrays are the sensor's floats."""

import csv
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .schema import CLASSES, load_schema


def feature_lines(path: Path, width: int):
    """`nightjar replay --features` lines as the model's arrays: the rows, static, sequence,
    URL tokens and character ids (`width` wide)."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return (rows,) + line_arrays(rows, width)


def line_arrays(rows, width: int):
    """Static, sequence, URL tokens and character ids of parsed feature lines."""
    static = np.asarray([j["static_features"] for j in rows], dtype=np.float32)
    seq = np.asarray([[p + r for p, r in zip(j["packets"], j["records"])] for j in rows], dtype=np.float32)
    chars = np.asarray([char_ids(j.get("chars", []), width) for j in rows]).reshape(len(rows), width)
    return static, seq, [j["url_tokens"] for j in rows], chars


def char_ids(chars, width: int) -> np.ndarray:
    """The model's character input of one flow: byte + 1 per position, 0 after the end
    (as the sensor's `Preprocess::chars`)."""
    out = np.zeros(width, dtype=np.int16)
    c = np.asarray(chars[:width], dtype=np.int16)
    out[:len(c)] = c + 1
    return out


class Arrays:
    """Accumulates flows in the npz layout, checking each line against feature_schema.json."""

    KEYS = ["family", "profile", "client", "server", "source", "run", "why"]

    def __init__(self, path: Path):
        self.schema = load_schema()
        self.path = path
        self.static, self.seq, self.tokens, self.chars, self.y = [], [], [], [], []
        self.n_chars = self.schema.get("chars", {}).get("max_len", 0)
        self.meta = {k: [] for k in self.KEYS}

    def check_version(self, j: dict):
        if j["schema_version"] != self.schema["schema_version"]:
            raise SystemExit(f"{self.path}: schema_version {j['schema_version']}, model/ expects {self.schema['schema_version']}")

    def add(self, j: dict, cls: str, **meta):
        self.check_version(j)
        s = self.schema
        seq_len = s["sequence_length"]
        if len(j["static_features"]) != len(s["static_features"]) or len(j["packets"]) != seq_len or len(j["records"]) != seq_len:
            raise SystemExit(f"{self.path}: feature shape differs from feature_schema.json")
        self.static.append(j["static_features"])
        self.seq.append([p + r for p, r in zip(j["packets"], j["records"])])
        self.tokens.append(j["url_tokens"])
        self.chars.append(char_ids(j.get("chars", []), self.n_chars))
        self.y.append(CLASSES.index(cls))
        meta.setdefault("client", j["client_ip"])
        meta.setdefault("server", j["server_ip"])
        for k in self.KEYS:
            self.meta[k].append(meta.get(k, ""))

    def save(self, out: Path, session: str):
        np.savez_compressed(
            out,
            static=np.asarray(self.static, dtype=np.float32),
            seq=np.asarray(self.seq, dtype=np.float32),
            tokens=np.asarray([json.dumps(t) for t in self.tokens]),
            chars=np.asarray(self.chars, dtype=np.int16).reshape(len(self.y), self.n_chars),
            y=np.asarray(self.y, dtype=np.int64),
            session=np.asarray([session] * len(self.y)),
            **{k: np.asarray(v) for k, v in self.meta.items()},
        )

    def per_class(self):
        y = np.asarray(self.y)
        return {c: int((y == i).sum()) for i, c in enumerate(CLASSES)}


def build(features: Path, labels: Path, out: Path, session: str) -> dict:
    """nightjar-flood corpus: labels joined by 5-tuple (source `nightjar-flood`, run the session)."""
    by_key = {}
    with open(labels, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["client_ip"], int(row["client_port"]), row["server_ip"], int(row["server_port"]))
            by_key[key] = row
    arrays = Arrays(features)
    unlabelled = 0
    found = set()
    with open(features) as f:
        for line in tqdm(f, desc=f"reading {features.name}", unit=" flows"):
            j = json.loads(line)
            arrays.check_version(j)
            key = (j["client_ip"], j["client_port"], j["server_ip"], j["server_port"])
            row = by_key.get(key)
            if row is None:
                unlabelled += 1
                continue
            found.add(key)
            arrays.add(j, row["class"], family=row["family"], profile=row.get("profile", ""), source="nightjar-flood",
                       run=session)
    arrays.save(out, session)
    summary = {"flows": len(arrays.y), "unlabelled_flows_skipped": unlabelled, "labelled_flows_missing": len(by_key) - len(found),
               "per_class": arrays.per_class()}
    print(json.dumps(summary))
    return summary


def build_labelled(features: Path, out: Path, session: str = "real") -> dict:
    """A `corpus` features.jsonl (every line carries its label): the same layout, with
    `source` and `run` (capture identifier) for grouped splits, `why` (the labelling rule)
    and `profile` the JA3."""
    arrays = Arrays(features)
    with open(features) as f:
        for line in tqdm(f, desc=f"reading {features.name}", unit=" flows"):
            j = json.loads(line)
            arrays.add(j, j["class"], family=j["family"], profile=j.get("ja3", ""), source=j["source"], run=j["run"],
                       why=j.get("why", ""))
    arrays.save(out, session)
    summary = {"flows": len(arrays.y), "per_class": arrays.per_class(), "sources": sorted(set(arrays.meta["source"])),
               "runs": len(set(arrays.meta["run"]))}
    print(json.dumps(summary))
    return summary


def load(path: Path) -> dict:
    d = dict(np.load(path, allow_pickle=False))
    d["tokens"] = [json.loads(t) for t in d["tokens"]]
    return d


# The `source` of generated flows appended to the real arrays.
AUG_SOURCE = "nightjar-flood"


def with_augmentation(d, paths):
    """The real arrays with the generated ones appended (source `nightjar-flood`, run
    `flood:<family>` so the per-run cap applies per generated family)."""
    if not paths:
        return d
    parts = [d]
    for p in paths:
        a = load(Path(p))
        a["source"] = np.asarray([AUG_SOURCE] * len(a["y"]))
        a["run"] = np.asarray([f"flood:{f}" for f in a["family"]])
        a["why"] = np.asarray(["generated"] * len(a["y"]))
        parts.append(a)
    keys = [k for k in d if all(k in p for p in parts)]
    out = {}
    for k in keys:
        if k == "tokens":
            out[k] = [t for p in parts for t in p[k]]
        else:
            out[k] = np.concatenate([np.asarray(p[k]) for p in parts])
    return out
