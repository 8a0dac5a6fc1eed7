"""The feature schema written by the sensor (`nightjar schema`), and the preprocessing that
model/ fits on top of it (scaling, URL vocabulary and IDF weights). Both end up in the
model's metadata file, which the sensor reads and checks against its own schema."""

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "feature_schema.json"
CLASSES = ["benign", "attack", "malware"]


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as f:
        return json.load(f)


class Preprocessing:
    """Per-column standardisation of the static features and of the sequence columns, and
    TF-IDF over URL tokens. Mirrors `sensor/src/inference/preprocess.rs` exactly: change one,
    change the other (the parity test in sensor/tests/model_parity.rs fails otherwise)."""

    def __init__(self, static_mean, static_std, seq_mean, seq_std, vocab, idf):
        self.static_mean = np.asarray(static_mean, dtype=np.float32)
        self.static_std = np.asarray(static_std, dtype=np.float32)
        self.seq_mean = np.asarray(seq_mean, dtype=np.float32)
        self.seq_std = np.asarray(seq_std, dtype=np.float32)
        self.vocab = list(vocab)
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.idf = np.asarray(idf, dtype=np.float32)

    @classmethod
    def fit(cls, static, seq, tokens, vocab_size=512, min_df=5):
        std = static.std(axis=0)
        seq_flat = seq.reshape(-1, seq.shape[-1])
        df = Counter()
        for toks in tokens:
            df.update(set(toks))
        docs = max(1, sum(1 for t in tokens if t))
        vocab = [t for t, c in sorted(df.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_df][:vocab_size]
        idf = [math.log((1 + docs) / (1 + df[t])) + 1.0 for t in vocab]
        return cls(
            static.mean(axis=0),
            np.where(std < 1e-3, 1.0, std),
            seq_flat.mean(axis=0),
            np.where(seq_flat.std(axis=0) < 1e-3, 1.0, seq_flat.std(axis=0)),
            vocab,
            idf,
        )

    def static(self, x):
        return np.clip((x - self.static_mean) / self.static_std, -10.0, 10.0).astype(np.float32)

    def seq(self, x):
        return np.clip((x - self.seq_mean) / self.seq_std, -10.0, 10.0).astype(np.float32)

    def url(self, tokens_list):
        """TF-IDF: term count / tokens in the URL, times IDF, L2-normalised; tokens outside
        the vocabulary are ignored (they still count in the length)."""
        out = np.zeros((len(tokens_list), len(self.vocab)), dtype=np.float32)
        for row, toks in enumerate(tokens_list):
            if not toks:
                continue
            counts = Counter(self.index[t] for t in toks if t in self.index)
            for j, c in counts.items():
                out[row, j] = (c / len(toks)) * self.idf[j]
            norm = float(np.sqrt((out[row] ** 2).sum()))
            if norm > 0:
                out[row] /= norm
        return out

    def to_json(self):
        return {
            "static_mean": [float(v) for v in self.static_mean],
            "static_std": [float(v) for v in self.static_std],
            "seq_mean": [float(v) for v in self.seq_mean],
            "seq_std": [float(v) for v in self.seq_std],
            "url_vocab": self.vocab,
            "url_idf": [float(v) for v in self.idf],
        }

    @classmethod
    def from_json(cls, j):
        return cls(j["static_mean"], j["static_std"], j["seq_mean"], j["seq_std"], j["url_vocab"], j["url_idf"])
