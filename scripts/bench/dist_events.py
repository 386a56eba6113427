#!/usr/bin/env python3
"""Reads a run's events.jsonl for scripts/bench/dist.sh and prints one line of numbers.

  rate EVENTS BATCH [SKIP]  samples/s of the steady state: BATCH (the global batch) times the steps
                            between consecutive progress events over their time, leaving out the
                            first SKIP intervals (default 2: warm-up) and every interval that holds
                            another event (an evaluation, a checkpoint); then the mean ms per step
  group EVENTS              reduce_ms bare_ms of the last group_stats event
  exit EVENTS               signal_to_exit_ms of the last exit event (- if none), its code, the
                            number of emergency_checkpoint events, the wait_ms of the first
                            signal_received in whole ms (- if none)
"""
import json
import sys
from datetime import datetime


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def when(e):
    # Python 3.11's fromisoformat reads Go's RFC 3339 (Z, up to 9 fractional digits: 6 are kept).
    return datetime.fromisoformat(e["time"]).timestamp()


def rate(evs, batch, skip):
    steps = secs = 0.0
    prev = None  # the last progress event, and whether another event came after it
    intervals = 0
    for e in evs:
        if e["type"] != "progress":
            if prev is not None:
                prev = (prev[0], True)
            continue
        if prev is not None and not prev[1]:
            intervals += 1
            if intervals > skip:
                steps += e["step"] - prev[0]["step"]
                secs += when(e) - when(prev[0])
        prev = (e, False)
    if steps == 0:
        sys.exit("no steady-state interval between progress events: run more steps")
    return batch * steps / secs, 1000 * secs / steps


def main():
    mode, path = sys.argv[1], sys.argv[2]
    evs = events(path)
    if mode == "rate":
        skip = int(sys.argv[4]) if len(sys.argv) > 4 else 2
        r, ms = rate(evs, int(sys.argv[3]), skip)
        print(f"{r:.1f} {ms:.1f}")
    elif mode == "group":
        gs = [e for e in evs if e["type"] == "group_stats"]
        if not gs:
            sys.exit("no group_stats event in " + path)
        print(f"{gs[-1]['reduce_ms']:.3f} {gs[-1]['bare_ms']:.3f}")
    elif mode == "exit":
        ex = [e for e in evs if e["type"] == "exit"]
        sig = [e for e in evs if e["type"] == "signal_received"]
        em = sum(e["type"] == "emergency_checkpoint" for e in evs)
        ms = ex[-1].get("signal_to_exit_ms", "-") if ex else "-"
        code = ex[-1]["code"] if ex else "-"
        wait = f"{sig[0]['wait_ms']:.0f}" if sig and "wait_ms" in sig[0] else "-"
        print(ms, code, em, wait)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
