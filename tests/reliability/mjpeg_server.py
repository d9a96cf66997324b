"""A stand-in network camera: an MJPEG stream (multipart/x-mixed-replace) over HTTP on loopback.

Run as its own process so a test can kill and restart it:
    python mjpeg_server.py PORT [FPS]
serves http://127.0.0.1:PORT/stream.mjpg, one generated 160x120 JPEG per 1/FPS s (a bright
square moving over a gradient; the frame number is drawn in), to any number of clients.
OpenCV's FFmpeg backend opens it as a camera. Prints "ready" once it listens.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "soundlensframe"
WIDTH, HEIGHT = 160, 120


def frame(n: int) -> bytes:
    x = np.linspace(0, 255, WIDTH, dtype=np.float32)
    image = np.repeat(np.broadcast_to(x, (HEIGHT, WIDTH))[..., None], 3, axis=2).astype(np.uint8) // 3
    cx = 20 + (n * 3) % (WIDTH - 40)
    image[40:80, cx - 20 : cx + 20] = 255
    cv2.putText(image, str(n), (4, HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return data.tobytes()


class Handler(BaseHTTPRequestHandler):
    fps = 25.0

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path != "/stream.mjpg":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        period, n, t0 = 1.0 / self.fps, 0, time.monotonic()
        try:
            while True:
                jpeg = frame(n)
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 f"{len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
                n += 1
                wait = t0 + n * period - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def main(argv: list[str]) -> None:
    port = int(argv[0])
    Handler.fps = float(argv[1]) if len(argv) > 1 else 25.0
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
