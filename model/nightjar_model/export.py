"""ONNX export (opset 17, one ONNX LSTM op), int8 quantisation in the QDQ form tract runs
correctly (Conv, MatMul and Gemm quantised; LSTM and Softmax stay float), the metadata file
the sensor reads, and the parity fixture that the Rust test replays through tract."""

import base64
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from .schema import CLASSES, Preprocessing, load_schema

INPUTS = ["static", "seq", "url"]
CHAR_INPUT = "chars"
OUTPUTS = ["probs", "embedding"]


def export_float(net, pre: Preprocessing, n_static: int, seq_shape, path: Path):
    import torch

    from .net import Exported

    net.eval()
    b = 2
    dummy = (torch.zeros(b, n_static), torch.zeros(b, *seq_shape), torch.zeros(b, max(len(pre.vocab), 1)))
    inputs = list(INPUTS)
    if getattr(net, "chars", 0):
        dummy += (torch.zeros(b, net.chars, dtype=torch.int64),)
        inputs.append(CHAR_INPUT)
    torch.onnx.export(Exported(net), dummy, str(path), opset_version=17, dynamo=False, input_names=inputs,
                      output_names=OUTPUTS, dynamic_axes={n: {0: "batch"} for n in inputs + OUTPUTS})
    onnx.checker.check_model(onnx.load(str(path)))


class _Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def quantize(float_path: Path, int8_path: Path, calib_feeds):
    quantize_static(str(float_path), str(int8_path), _Reader(calib_feeds), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"], activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=False)
    onnx.checker.check_model(onnx.load(str(int8_path)))


def feeds(pre: Preprocessing, static, seq, tokens, batch=64, chars=None):
    """ONNX Runtime feeds; `chars` (character ids, `dataset.char_ids`) for a graph with the
    character input."""
    out = []
    for i in range(0, len(static), batch):
        f = {"static": pre.static(static[i:i + batch]), "seq": pre.seq(seq[i:i + batch]),
             "url": pre.url(tokens[i:i + batch])}
        if chars is not None:
            f[CHAR_INPUT] = np.asarray(chars[i:i + batch], dtype=np.int64)
        out.append(f)
    return out


def chars_of(d, idx, width):
    """Character ids of flows `idx` when the graph reads them (`width` > 0), else None."""
    return d["chars"][idx] if width else None


def run_ort(path: Path, feed_list, outputs=("probs",)):
    """The graph's `outputs` over every feed: one array (one output) or a tuple of them."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    runs = [sess.run(list(outputs), f) for f in feed_list]
    out = tuple(np.concatenate([r[k] for r in runs]) for k in range(len(outputs)))
    return out[0] if len(outputs) == 1 else out


def ort_speed(path: Path, feed, repeats=20):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    sess.run(None, feed)
    t0 = time.perf_counter()
    for _ in range(repeats):
        sess.run(None, feed)
    per_batch = (time.perf_counter() - t0) / repeats
    return len(feed["static"]) / per_batch


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parity_fixture(pre, d, idx, float_path, int8_path, out: Path, chars_width=0, verdicts=None):
    """Raw sensor features of a few flows and the probabilities ONNX Runtime gives them;
    `verdicts(probs)`, when given, the verdict names the sensor must reach from them."""
    static, seq, tokens = d["static"][idx], d["seq"][idx], [d["tokens"][i] for i in idx]
    chars = chars_of(d, idx, chars_width)
    f = feeds(pre, static, seq, tokens, batch=len(idx), chars=chars)
    fixture = {
        "flows": [{"static_features": [float(v) for v in static[i]],
                   "packets": [[float(v) for v in row[:6]] for row in seq[i]],
                   "records": [[float(v) for v in row[6:]] for row in seq[i]],
                   "url_tokens": tokens[i],
                   "chars": [] if chars is None else [int(c) - 1 for c in chars[i] if c > 0]}
                  for i in range(len(idx))],
        "expected": {"float": run_ort(float_path, f).tolist(), "int8": run_ort(int8_path, f).tolist()},
        "tolerance": {"float": 1e-4, "int8": 2e-2},
    }
    if verdicts is not None:
        fixture["expected_verdicts"] = {k: verdicts(np.asarray(fixture["expected"][k])) for k in ("float", "int8")}
    out.write_text(json.dumps(fixture) + "\n")


def head_weights(float_path: Path) -> dict:
    """The softmax layer (the head online learning starts from), read back from the ONNX file
    so the sensor's copy is the one the graph runs."""
    init = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(float_path)).graph.initializer}
    return {"weight": init["net.head.weight"].astype(float).tolist(), "bias": init["net.head.bias"].astype(float).tolist()}


def learning_reference(pre, d, idx, y, float_path: Path, out: Path, per_class=2000, seed=0, chars_width=0) -> dict:
    """Embeddings of labelled flows the head was not fitted on (the calibration slice),
    up to `per_class` per class: the sensor seeds its replay reservoir and its shadow
    evaluation with them. Written as JSON with the float32 embeddings in base64."""
    rng = np.random.default_rng(seed)
    pick = np.sort(np.concatenate([rng.permutation(idx[y[idx] == c])[:per_class] for c in range(len(CLASSES))]))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(float_path), so, providers=["CPUExecutionProvider"])
    f = feeds(pre, d["static"][pick], d["seq"][pick], [d["tokens"][i] for i in pick], batch=256,
              chars=chars_of(d, pick, chars_width))
    emb = np.concatenate([sess.run(["embedding"], x)[0] for x in f]).astype("<f4")
    out.write_text(json.dumps({"dim": int(emb.shape[1]), "labels": [int(v) for v in y[pick]],
                               "embeddings_f32le_b64": base64.b64encode(emb.tobytes()).decode()}) + "\n")
    return {"path": out.name, "sha256": sha256(out), "flows": int(len(pick))}


def metadata(pre, version, temperature, threshold, files, default, metrics_summary, n_static_names, chars_width=0,
             decision=None):
    """The sensor's metadata file. `chars_width`: the graph's character input (0: none);
    `decision`: per app, `benign_log_offset` and `unknown_below` (the sensor applies them
    to the graph's probabilities; without one an app uses `threshold` and no offset)."""
    schema = load_schema()
    assert len(schema["static_features"]) == n_static_names
    return {
        "model_version": version,
        "created_unix": int(time.time()),
        "schema_version": schema["schema_version"],
        "static_features": schema["static_features"],
        "sequence_length": schema["sequence_length"],
        "sequence_columns": ["pkt_" + c for c in schema["packet_columns"]] + ["rec_" + c for c in schema["record_columns"]],
        "classes": CLASSES,
        "inputs": INPUTS + ([CHAR_INPUT] if chars_width else []),
        "chars": chars_width,
        "decision": decision or {},
        "outputs": OUTPUTS,
        "temperature": temperature,
        "unknown_below": threshold,
        "preprocessing": pre.to_json(),
        "files": files,
        "default": default,
        "metrics": metrics_summary,
    }

