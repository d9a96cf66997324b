# docs/protocol.md §8 as published with version 1.0, frozen: a 1.0 subscriber must keep working.
"""Print where the loudest sound of stream cam0 is: newest heatmap only, checked as docs/protocol.md says."""
import json
import math
import sys

import numpy as np
import zmq

address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 0  # messages to print; 0 = forever
topic = b"soundlens.v1.heatmap.cam0"

context = zmq.Context()
sock = context.socket(zmq.SUB)
sock.setsockopt(zmq.RCVHWM, 4)
sock.setsockopt(zmq.LINGER, 0)
sock.setsockopt(zmq.SUBSCRIBE, topic)
sock.connect(address)
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)
printed, last = 0, {}

while count == 0 or printed < count:
    if not poller.poll(5000):
        sys.exit(f"no heatmap from {address} for 5 s: is `soundlens live` running?")
    newest = None
    while True:  # drain everything queued, keep only the newest message
        try:
            newest = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
    if newest is None or newest[0] != topic:  # the prefix also matches e.g. ...cam01
        continue
    header = json.loads(newest[1])
    if header["version"][0] != 1 or len(newest) != 2 + len(header["buffers"]):
        continue
    spec = header["buffers"][0]
    dtype = np.dtype(spec["dtype"])
    if len(newest[2]) != math.prod(spec["shape"]) * dtype.itemsize:
        continue  # truncated: drop it
    heatmap = np.frombuffer(newest[2], dtype=dtype).reshape(spec["shape"])
    if last.get("session") == header["session"] and header["seq"] != last["seq"] + 1:
        print(f"(skipped {header['seq'] - last['seq'] - 1} older heatmaps)")
    last = header
    peak = header["peaks"][0] if header["peaks"] else None
    where = f"u={peak['u']:.2f} v={peak['v']:.2f} score={peak['score']:.2f}" if peak else "no peak"
    print(f"seq {header['seq']}: {heatmap.shape[0]}x{heatmap.shape[1]} map, {where}")
    printed += 1

sock.close()
context.term()
