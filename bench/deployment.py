"""The servers the benchmarks run on loopback: one `serve`, and the split deployment (one `lm-server`,
N voice gateways `serve --lm-url` and, for N > 1, HAProxy in front of them with the shipped
deploy/haproxy.cfg).

    server = ServerProcess(model, preset, limits).start()   # python -m assistant serve --port 0
    lm = LmServerProcess(model, preset).start()             # .url: http://127.0.0.1:PORT/v1
    dep = Deployment(model, preset, limits, gateways=2).start()
    dep.port, dep.sessions(), dep.rss_mb(), dep.stop()      # as ServerProcess has them

Every client of a gateway behind the proxy comes from the proxy's address, so the gateways' per-client
limit is their whole session limit (a deployment limits clients at the proxy).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from assistant.config import ServerConfig

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
START_TIMEOUT_S = 180.0  # loading the models on a busy machine
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m assistant serve --port 0` in a subprocess; its output goes to files (a full pipe blocks)."""

    def __init__(self, model: str | None, preset: str | None, limits: ServerConfig):
        self.cmd = [sys.executable, "-m", "assistant", "serve", "--port", "0"]
        self.cmd += ["--model", model] if model else []
        self.cmd += ["--preset", preset] if preset else []
        self.cmd += ["--max-sessions", str(limits.max_sessions)]
        self.cmd += ["--max-sessions-per-client", str(limits.max_sessions_per_client)]
        self.dir = Path(tempfile.mkdtemp(prefix="bench_load_"))
        self.proc: subprocess.Popen | None = None
        self.port = 0

    NAME = "serve"
    SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)/")  # the line that says where it serves

    def start(self) -> ServerProcess:
        self.port = int(self.launch().group(1))
        return self

    def launch(self) -> re.Match:
        """Start the command and wait for its SERVING line (its port is the line's first group)."""
        out, err = (self.dir / "stdout").open("wb"), (self.dir / "stderr").open("wb")
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = self.SERVING.search((self.dir / "stdout").read_text())
            if found:
                return found
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.NAME} exited: {self.log_tail()}")
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.NAME} did not start within {START_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        return (self.dir / "stderr").read_text(errors="replace")[-chars:]

    def rss_mb(self) -> float | None:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(found.group(1)) / 1024 if found else None

    def sessions(self) -> int:
        url = f"http://127.0.0.1:{self.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(json.loads(r.read())["sessions"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)


class LmServerProcess(ServerProcess):
    """`python -m assistant lm-server --port 0` in a subprocess; output to files (a full pipe blocks)."""

    NAME = "lm-server"
    SERVING = re.compile(r"serving \S+ on http://127\.0\.0\.1:(\d+)/v1")

    def __init__(self, model: str | None, preset: str | None):
        self.cmd = [sys.executable, "-m", "assistant", "lm-server", "--port", "0", "--name", "dlm"]
        self.cmd += ["--model", model] if model else []
        self.cmd += ["--preset", preset] if preset else []
        self.dir = Path(tempfile.mkdtemp(prefix="bench_lm_"))
        self.proc: subprocess.Popen | None = None
        self.port, self.url = 0, ""

    def start(self) -> LmServerProcess:
        self.port = int(self.launch().group(1))
        self.url = f"http://127.0.0.1:{self.port}/v1"
        return self


class Deployment:
    """lm-server + gateways (+ HAProxy): one address for the clients, as bench.load's server."""

    behind_proxy = True  # no single server sees every session: bench.load skips its refusal check

    def __init__(self, model: str | None, preset: str | None, limits: ServerConfig, gateways: int):
        self.lm = LmServerProcess(model, preset)
        per_gateway = ServerConfig(
            port=0, max_sessions=limits.max_sessions, max_sessions_per_client=limits.max_sessions
        )
        self.gateways = [ServerProcess(None, preset, per_gateway) for _ in range(gateways)]
        self.haproxy: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> Deployment:
        self.lm.start()
        for g in self.gateways:
            g.cmd += ["--lm-url", self.lm.url]
            g.start()
        if len(self.gateways) == 1:
            self.port = self.gateways[0].port
            return self
        binary = shutil.which("haproxy")
        if binary is None:
            raise SystemExit("haproxy is not installed (apt-get install haproxy)")
        self.port = free_port()
        env = {**os.environ, "DLM_LB_BIND": f"127.0.0.1:{self.port}"}
        env.update({f"DLM_GATEWAY_{i + 1}": f"127.0.0.1:{g.port}" for i, g in enumerate(self.gateways)})
        log = (self.lm.dir / "haproxy.log").open("wb")
        cmd = [binary, "-db", "-f", str(HAPROXY_CONFIG)]
        self.haproxy = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self._wait_for_proxy()
        return self

    def _wait_for_proxy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                ServerProcess.sessions(self)
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("HAProxy did not pass /healthz through")

    def sessions(self) -> int:
        return sum(g.sessions() for g in self.gateways)

    def rss_mb(self) -> float | None:
        parts = [p.rss_mb() for p in (self.lm, *self.gateways)]
        return None if None in parts else sum(parts)

    def log_tail(self, chars: int = 2000) -> str:
        return "\n".join(p.log_tail(chars) for p in self.gateways)

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(STOP_TIMEOUT_S)
        for p in (*self.gateways, self.lm):
            p.stop()
