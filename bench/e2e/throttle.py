#!/usr/bin/env python3
"""Copies stdin to stdout at no more than RATE bytes/s: a slow disk for UDPcast's --pipe."""
import sys
import time

rate = float(sys.argv[1])
start = time.monotonic()
done = 0
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    block = inp.read(1 << 20)
    if not block:
        break
    out.write(block)
    done += len(block)
    ahead = done / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
out.flush()
