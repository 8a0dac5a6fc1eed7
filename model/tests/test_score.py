"""`score`: the sensor's verdicts joined with a capture's labels (no sensor needed)."""

import json

from nightjar_model import score

LABELS = """\
client_ip,client_port,server_ip,server_port,start_ts,class,family
10.0.0.1,40000,10.0.0.9,80,1.0,benign,shop
10.0.0.1,40001,10.0.0.9,80,1.0,benign,shop
10.0.0.1,40002,10.0.0.9,80,1.0,attack,sqli
10.0.0.1,40003,10.0.0.9,80,1.0,attack,sqli
10.0.0.1,40004,10.0.0.9,80,1.0,attack,xss
10.0.0.1,40005,10.0.0.9,80,1.0,malware,c2
10.0.0.1,40006,10.0.0.9,80,1.0,benign,twice
10.0.0.1,40006,10.0.0.9,80,2.0,attack,twice
10.0.0.1,40007,10.0.0.9,80,1.0,benign,no_event
"""


def event(port, verdict, score_=0.9, app="http", reverse=False):
    a, b = ("10.0.0.1", port), ("10.0.0.9", 80)
    if reverse:
        a, b = b, a
    return json.dumps({"src_ip": a[0], "src_port": a[1], "dest_ip": b[0], "dest_port": b[1], "app": app,
                       "verdict": {"class": verdict, "score": score_}})


def write(tmp_path, lines):
    (tmp_path / "l.csv").write_text(LABELS)
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "e.jsonl", tmp_path / "l.csv"


def test_join_and_report(tmp_path):
    ev, lab = write(tmp_path, [
        event(40000, "benign"),
        event(40001, "attack", reverse=True),  # direction does not matter
        event(40002, "attack"),
        event(40003, "unknown", 0.4),           # unknown is a miss
        event(40004, "malware"),                # flagged, not named
        event(40005, "malware"),
        event(40005, "benign"),                 # a second event of a flow: the first counts
        event(40006, "attack"),                 # labelled twice with two classes: dropped
        event(50000, "benign"),                 # not labelled
        event(40000, "benign", app="tls"),
    ])
    rows, left = score.join(ev, lab)
    assert left == {"ambiguous_labels": 1, "unlabelled_event": 2, "repeated_event": 2, "labelled_without_event": 1}
    rep = score.report(rows)
    assert rep["flows"] == 6
    assert rep["benign_flagged"] == 0.5
    # flagged: 40001 (benign), 40002, 40004, 40005 -> tp 3 of 4 flagged; 3 of 4 non-benign
    assert rep["flagged_vs_benign"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75}
    assert rep["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 1, 0]]
    assert rep["families"]["attack/sqli"] == {"flows": 2, "flagged": 0.5, "named": 0.5, "unknown": 0.5}
    assert rep["families"]["attack/xss"]["flagged"] == 1.0 and rep["families"]["attack/xss"]["named"] == 0.0
    assert rep["per_class"]["malware"]["precision"] == 0.5


def test_app_filter_and_unscored(tmp_path):
    ev, lab = write(tmp_path, [event(40000, "benign", app="tls"), event(40002, "attack", None)])
    rows, left = score.join(ev, lab, app="http")
    assert rows == [] and left["other_app"] == 1 and left["no_score"] == 1
    assert score.report(rows) == {"flows": 0}
