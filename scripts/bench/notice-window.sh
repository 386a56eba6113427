#!/usr/bin/env bash
# How early a notice is a notice: starts `spottrain help` (the process start of every command:
# the dynamic loader, libtorch's initializers, the Go runtime, the package initializers, main)
# again and again, sends it SIGTERM DELAY ms after the start, and counts the processes that the
# signal killed by the default action rather than reached as a notice (help then exits 0).
# Each delay is tried with a parent that starts it as a shell or a container runtime does (signals
# unblocked), and with one that starts it with SIGTERM, SIGINT and SIGHUP blocked, as `spottrain
# run` starts its trainers. ROUNDS (default 10) starts per delay and parent; DELAYS (ms, default
# "0 20 100 200 400 600 800 1000 1200").
# Env: BIN (default bin/spottrain, built if missing), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/spottrain}
PYTHON=${PYTHON:-python3}
[[ -x $BIN ]] || go build -o "$BIN" ./cmd/spottrain
ROUNDS=${ROUNDS:-10} DELAYS=${DELAYS:-0 20 100 200 400 600 800 1000 1200} "$PYTHON" - "$BIN" <<'PY'
import os, signal, subprocess, sys, time

binary = sys.argv[1]
rounds = int(os.environ["ROUNDS"])
notice = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

def start(blocked):
    pre = (lambda: signal.pthread_sigmask(signal.SIG_BLOCK, notice)) if blocked else None
    return subprocess.Popen([binary, "help"], stdout=subprocess.DEVNULL, preexec_fn=pre)

t0 = time.monotonic()
start(False).wait()
print(f"spottrain help alone: {(time.monotonic() - t0) * 1000:.0f} ms")
for d in map(int, os.environ["DELAYS"].split()):
    killed = {False: 0, True: 0}
    for blocked in (False, True):
        for _ in range(rounds):
            p = start(blocked)
            time.sleep(d / 1000)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            if p.wait() == -signal.SIGTERM:
                killed[blocked] += 1
    print(f"SIGTERM {d:4d} ms after the start: killed {killed[False]} of {rounds} (signals unblocked), "
          f"{killed[True]} of {rounds} (started with them blocked)")
PY
