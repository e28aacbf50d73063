"""Benchmark dltools serve: N requests, C at a time, against a server on 127.0.0.1 only.

Starts ``dltools serve`` in a subprocess on a free local port with a tile model (``--model``,
or the small colour-moment tile model of tests/test_segment.py trained in a few seconds),
warms it up, then sends ``--requests`` segment requests (the demo photo, 768 x 512) from
``--concurrency`` threads, each bounded by ``--timeout`` seconds and all by ``--max-seconds``.
Reports requests/s, p50/p95 latency, the status codes, and the server's resident memory
before and after; fails (exit 1) on any 5xx or a memory growth beyond 10%.

    python bench/serve.py                                 # 200 requests, 8 concurrent
    python bench/serve.py --refine mlp --workers 2 --model tile_model:labeldefs.txt
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "demo_data" / "images" / "coast_01.jpg"


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def small_tile_model(folder: Path) -> Path:
    """The tile model of tests/test_segment.py (a softmax on tile colour moments)."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_segment import TILE, tile_model

    from dltools.synthetic.scenes import coastal_scene

    return tile_model(folder / "tiles", [coastal_scene(768, 1024, seed=2)], TILE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="PATH[:LABELDEFS] of a tile model (default: a small one)")
    parser.add_argument("--requests", type=int, default=200, help="(default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="server's (default: %(default)s)")
    parser.add_argument("--queue", type=int, default=8, help="server's (default: %(default)s)")
    parser.add_argument(
        "--refine", default="none", help="refiner of each request (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="per request, s (%(default)s)")
    parser.add_argument("--max-seconds", type=float, default=900, help="all, s (%(default)s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(small_tile_model(Path(tmp)))
        name = Path(model.partition(":")[0]).name.removesuffix(".keras").removesuffix(".pb")
        port = free_port()
        command = [sys.executable, "-m", "dltools", "serve", "--model", model]
        command += ["--port", str(port), "--workers", str(args.workers)]
        command += ["--queue", str(args.queue)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            return run(args, server, url, name)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(60)


def run(args: argparse.Namespace, server: subprocess.Popen, url: str, name: str) -> int:
    client = httpx.Client(base_url=url, timeout=args.timeout)
    deadline = time.monotonic() + 180
    while True:
        try:
            client.get("/health")
            break
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start") from None
            time.sleep(0.5)
    image = PHOTO.read_bytes()
    route = f"/models/{name}/segment"
    params = {"refine": args.refine, "format": "json"}

    def one(_: int) -> tuple[int, float]:
        start = time.perf_counter()
        try:
            status = client.post(route, params=params, content=image).status_code
        except httpx.TimeoutException:
            status = 0
        return status, time.perf_counter() - start

    with ThreadPoolExecutor(args.concurrency) as pool:
        # warm up every worker thread at once (model traces, allocator arenas), as in the run
        for status, _ in pool.map(one, range(2 * args.concurrency)):
            assert status == 200, f"warm-up request failed with {status}"
        before = rss_mb(server.pid)
        started = time.perf_counter()
        futures = [pool.submit(one, i) for i in range(args.requests)]
        results = [
            f.result(timeout=max(1, args.max_seconds - (time.perf_counter() - started)))
            for f in futures
        ]
    seconds = time.perf_counter() - started
    after = rss_mb(server.pid)
    statuses = Counter(status for status, _ in results)
    latencies = np.array([t for status, t in results if status == 200])
    print(
        f"{args.requests} requests, {args.concurrency} concurrent, refine={args.refine}, "
        f"{args.workers} worker(s), queue {args.queue}: {seconds:.1f} s"
    )
    print(f"  {args.requests / seconds:.2f} requests/s; statuses {dict(statuses)}")
    if latencies.size:
        p50, p95 = np.percentile(latencies, [50, 95])
        print(f"  latency p50 {p50:.2f} s, p95 {p95:.2f} s (200s only)")
    growth = after / before - 1
    print(f"  server RSS {before:.0f} MB before, {after:.0f} MB after ({100 * growth:+.1f}%)")
    errors = sum(n for status, n in statuses.items() if status >= 500 or status == 0)
    ok = errors == 0 and growth <= 0.10
    print("PASS" if ok else f"FAIL: {errors} 5xx/timeouts, memory growth {100 * growth:.1f}%")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
