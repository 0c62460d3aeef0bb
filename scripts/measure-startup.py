"""Measures `feen serve` start-up: time from exec to the first successful /healthz, on a fresh
data directory (creates the key ring, the SQLite file, runs migrations) and on a restart, and the
resident memory right after. A benchmark, not a test.

Usage: python3 scripts/measure-startup.py target/release/feen [RUNS]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request


def wait_ready(url: str) -> None:
    while True:
        try:
            urllib.request.urlopen(url, timeout=0.2).read()
            return
        except Exception:
            time.sleep(0.002)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def start(binary: str, data_dir: str) -> tuple[float, int]:
    began = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:18811", "--data-dir", data_dir],
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    )
    wait_ready("http://127.0.0.1:18811/healthz")
    took = (time.perf_counter() - began) * 1000
    rss = rss_kib(proc.pid)
    proc.terminate()
    proc.wait()
    return took, rss


def main() -> None:
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    for _ in range(runs):
        data_dir = tempfile.mkdtemp(prefix="feen-startup-")
        first, first_rss = start(binary, data_dir)
        again, again_rss = start(binary, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"first start {first:.1f} ms (RSS {first_rss} KiB), restart {again:.1f} ms (RSS {again_rss} KiB)")


if __name__ == "__main__":
    main()
