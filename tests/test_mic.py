"""`python -m assistant mic` on a real PulseAudio daemon with virtual devices.

A private daemon (its runtime, state and home under a temp dir) gets a null sink "spk" (the speakers) and a
`module-pipe-source` "pipemic" (the microphone). A writer thread feeds the microphone pipe in real time
(silence, a spoken question, silence); the speakers' monitor is recorded to a file. The test checks the
live text view and that the reply's audio was played: the recording is loud for a while and transcribes
to the reply. Skipped when pulseaudio is not installed (a failure in CI, DLM_REQUIRE_SYSTEM=1).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from audio import pcm
from testkit.speech import make_conversation_wav, normalize_text, word_error_rate
from testkit.system import require_library, require_program
from tests.conftest import ROOT, TINY_FLAGS, lm_spec

pytestmark = pytest.mark.slow  # the microphone mode on a PulseAudio daemon

QUESTION = "What is the capital of France?"
BARGE_IN = "Tell me a joke."
HEARD_S = 1.6  # as tests/test_realtime.py: a barge-in, not a false start (SessionConfig.false_start_ms)
# Whisper tiny.en hears piper's renditions of it as "Tell me the / they / that joke" and once "Tell me
# that Joe.": the second turn is checked to be these words, up to two of the four misheard.
BARGE_IN_MAX_WER = 0.5
MIC_RATE = pcm.SAMPLE_RATE_ASR  # the pipe source's rate
REC_RATE = pcm.SAMPLE_RATE_ASR  # the recording of the speakers' monitor
WRITE_MS = 20  # the writer's pacing step
SETTLE_S = 2.5  # null sinks stall for ~2 s after start; wait until the keep-busy streams run
RUN_TIMEOUT_S = 240
DAEMON_START_S = 15
LOUD = 0.02  # a recorded sample above this is reply audio (the sinks otherwise carry digital silence)


def _require_pulse():
    require_program("pulseaudio", "pactl", "pacat", apt="pulseaudio pulseaudio-utils")
    require_library("portaudio", apt="libportaudio2")


class PulseRig:
    """A private PulseAudio daemon with a speaker sink and a pipe microphone, and its helper processes."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.fifo = tmp / "mic.fifo"
        # module-pipe-source makes the FIFO itself (and refuses one that exists)
        self.env = dict(os.environ)
        for name, sub in (
            ("XDG_RUNTIME_DIR", "run"),
            ("PULSE_RUNTIME_PATH", "run/pulse"),
            ("PULSE_STATE_PATH", "state"),
            ("PULSE_CONFIG_PATH", "config"),
            ("HOME", "home"),
        ):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
            self.env[name] = str(tmp / sub)
        self.env.pop("PULSE_SERVER", None)
        self.procs: list[subprocess.Popen] = []
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._files: list = []  # files the helper processes use, closed in close()
        self._utterances: queue.Queue = queue.Queue()  # the microphone carries silence between these
        subprocess.run(
            [
                "pulseaudio",
                "--daemonize=yes",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-n",
                "--use-pid-file=yes",
                "-L",
                "module-native-protocol-unix",
                "-L",
                "module-null-sink sink_name=spk rate=48000 channels=1",
                "-L",
                f"module-pipe-source source_name=pipemic file={self.fifo}"
                f" format=s16le rate={MIC_RATE} channels=1",
            ],
            env=self.env,
            check=True,
            timeout=30,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + DAEMON_START_S
        while "pipemic" not in self._sources():  # modules load after daemonizing
            if time.monotonic() > deadline:
                raise RuntimeError("PulseAudio did not create the pipe source")
            time.sleep(0.2)
        self.pactl("set-default-sink", "spk")
        self.pactl("set-default-source", "pipemic")
        self.env["PULSE_SINK"], self.env["PULSE_SOURCE"] = "spk", "pipemic"

    def _keep(self, f):
        self._files.append(f)
        return f

    def _sources(self) -> str:
        try:
            return self.pactl("list", "short", "sources")
        except subprocess.CalledProcessError:
            return ""  # the daemon's socket is not up yet

    def pactl(self, *args) -> str:
        return subprocess.run(
            ["pactl", *args], env=self.env, check=True, timeout=30, capture_output=True, text=True
        ).stdout

    def say(self, x: np.ndarray) -> None:
        """Speak float32 [N] at MIC_RATE into the microphone (after anything still being said)."""
        self._utterances.put(x)

    def start(self, record_to: Path) -> None:
        # Keep the sink busy with silence (an idle null sink stalls), and record its monitor.
        self._zero = open("/dev/zero", "rb")  # noqa: SIM115 -- open while pacat runs; closed in close()
        self._files.append(self._zero)
        self.procs.append(
            subprocess.Popen(
                [
                    "pacat",
                    "-p",
                    "-d",
                    "spk",
                    "--raw",
                    "--format=s16le",
                    "--rate=48000",
                    "--channels=1",
                    "--latency-msec=10",
                ],
                stdin=self._zero,
                env=self.env,
            )
        )
        self.procs.append(
            subprocess.Popen(
                [
                    "parec",
                    "-d",
                    "spk.monitor",
                    "--raw",
                    "--format=s16le",
                    f"--rate={REC_RATE}",
                    "--channels=1",
                ],
                stdout=self._keep(open(record_to, "wb")),  # noqa: SIM115 -- closed in close()
                env=self.env,
            )
        )
        self._writer = threading.Thread(target=self._write_mic, daemon=True)
        self._writer.start()
        time.sleep(SETTLE_S)

    def _write_mic(self) -> None:
        """Real-time pacing: the pipe source produces only what is written, so silence is written too."""
        step = pcm.ms_to_samples(WRITE_MS, MIC_RATE)
        silence = bytes(2 * step)
        fd = os.open(self.fifo, os.O_WRONLY)
        x, j = np.zeros(0, np.float32), 0
        try:
            t0, i = time.perf_counter(), 0
            while not self._stop.is_set():
                if j * step >= len(x) and not self._utterances.empty():
                    x, j = self._utterances.get_nowait(), 0
                chunk = x[j * step : (j + 1) * step]
                j += 1
                data = pcm.float_to_int16_bytes(chunk) if len(chunk) else silence
                if len(data) < len(silence):
                    data += silence[len(data) :]
                os.write(fd, data)
                i += 1
                time.sleep(max(0.0, t0 + i * WRITE_MS / 1000 - time.perf_counter()))
        except BrokenPipeError:
            pass
        finally:
            os.close(fd)

    def close(self) -> None:
        self._stop.set()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if self._writer is not None:
            self._writer.join(5)
        subprocess.run(["pulseaudio", "--kill"], env=self.env, timeout=30, check=False)
        for f in self._files:
            f.close()


class MicApp:
    """`python -m assistant mic` on the rig's devices, its stdout read as it comes (the live text view)."""

    def __init__(self, rig: PulseRig, *flags: str):
        cmd = [
            sys.executable,
            "-m",
            "assistant",
            "mic",
            "--model",
            lm_spec(),
            "--input-device",
            "pulse",
            "--output-device",
            "pulse",
            *flags,
        ]
        cmd += TINY_FLAGS
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=rig.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out = ""
        ready = self.proc.stderr.readline()  # "listening ..." once the models are loaded and the devices open
        assert ready.startswith("listening"), ready + self.proc.stderr.read()
        self.err = ready
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True) for name in ("out", "err")
        ]
        for t in self._readers:
            t.start()

    def _read(self, name: str) -> None:
        stream = self.proc.stdout if name == "out" else self.proc.stderr
        while ch := stream.read(1):
            setattr(self, name, getattr(self, name) + ch)

    def wait_for(self, text: str, timeout: float = RUN_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            assert time.monotonic() < deadline and self.proc.poll() is None, (text, self.out, self.err)
            time.sleep(0.05)

    def finish(self) -> int:
        try:
            self.proc.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._readers:
            t.join(5)
        return self.proc.returncode


def test_mic_half_duplex_replies_through_the_speakers(tmp_path, engines):
    _require_pulse()
    short = Path(tempfile.mkdtemp(prefix="pa_"))  # unix socket paths must stay short
    rec = tmp_path / "speakers.raw"
    question = make_conversation_wav([1.0, QUESTION, 0.2], rate=MIC_RATE).samples
    rig = PulseRig(short)
    try:
        rig.start(rec)
        app = MicApp(rig, "--max-turns", "1")
        rig.say(question)
        code = app.finish()
        time.sleep(0.5)  # the monitor recording catches the tail
    finally:
        rig.close()
        shutil.rmtree(short, ignore_errors=True)
    proc = subprocess.CompletedProcess(app.proc.args, code, app.out, app.err)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    heard = next((ln[len("you: ") :] for ln in lines if ln.startswith("you: ")), None)
    said_line = next((ln for ln in lines if ln.startswith("assistant: ")), None)
    assert heard is not None and word_error_rate(QUESTION, heard) <= 0.2, proc.stdout
    assert said_line is not None, proc.stdout
    said = said_line[len("assistant: ") :].rsplit("   (", 1)[0].strip()
    assert said, proc.stdout
    x = pcm.int16_bytes_to_float(rec.read_bytes(), allow_empty=True)
    loud = np.flatnonzero(np.abs(x) > LOUD)
    assert loud.size and (loud[-1] - loud[0]) / REC_RATE > 0.5, "no reply audio reached the speakers"
    played = x[max(0, loud[0] - REC_RATE // 5) : loud[-1] + REC_RATE // 5]
    back = engines.asr.transcribe(played).text
    assert word_error_rate(said, back) <= 0.5, (said, back)
    assert normalize_text(back)


def test_mic_headphones_barge_in(tmp_path):
    """--headphones: speaking over the reply interrupts it, and the new question gets its own answer."""
    _require_pulse()
    short = Path(tempfile.mkdtemp(prefix="pa_"))
    rig = PulseRig(short)
    try:
        rig.start(tmp_path / "speakers.raw")
        app = MicApp(rig, "--headphones", "--max-turns", "2")
        rig.say(make_conversation_wav([0.5, QUESTION, 0.2], rate=MIC_RATE).samples)
        app.wait_for("assistant: ")
        app.wait_for(" ", timeout=5)
        time.sleep(HEARD_S)  # the reply is playing now, and sooner would be the question going on
        rig.say(make_conversation_wav([BARGE_IN, 0.2], rate=MIC_RATE).samples)
        code = app.finish()
    finally:
        rig.close()
        shutil.rmtree(short, ignore_errors=True)
    assert code == 0, app.err[-2000:]
    heard = [ln[len("you: ") :] for ln in app.out.splitlines() if ln.startswith("you: ")]
    assert len(heard) == 2 and word_error_rate(BARGE_IN, heard[1]) <= BARGE_IN_MAX_WER, app.out
    replies = [ln for ln in app.out.splitlines() if ln.startswith("assistant: ")]
    assert len(replies) == 2 and "[interrupted]" in replies[0] and "[interrupted]" not in replies[1], app.out
