"""Device listing and selection, and the messages a machine without PortAudio or devices gets.

Listing, selection and playback run on a private PulseAudio daemon with a virtual sink (the `pulse`
fixture), so they check real devices on any machine; without pulseaudio they skip, and in CI
(DLM_REQUIRE_SYSTEM=1) they fail."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from audio import devices
from audio.devices import AudioDeviceError, DeviceInfo, list_devices, select_device
from testkit.system import require_library, require_program


@pytest.mark.slow
def test_list_devices_returns_device_info(pulse):
    devs = list_devices()
    assert any(d.name == "pulse" and d.inputs > 0 and d.outputs > 0 for d in devs), devs
    assert all(isinstance(d, DeviceInfo) and str(d.index) in str(d) for d in devs)
    assert sum(d.default_input for d in devs) == 1 and sum(d.default_output for d in devs) == 1, devs


@pytest.mark.slow
def test_a_device_is_chosen_by_index_or_name_and_a_wrong_one_lists_the_choices(pulse):
    index = next(d.index for d in list_devices() if d.name == "pulse")
    assert select_device("pulse", "input") == index and select_device(str(index), "output") == index
    assert select_device(None, "input") is None  # the default device
    with pytest.raises(AudioDeviceError, match="no input device matches") as e:
        select_device("no-such-device-xyz", "input")
    assert "pulse" in str(e.value), e.value  # the choices are listed
    with pytest.raises(AudioDeviceError, match="not a usable output device"):
        select_device(9999, "output")
    with pytest.raises(ValueError, match="kind"):
        select_device(None, "sideways")


def test_a_machine_without_devices_is_told_so(monkeypatch):
    monkeypatch.setattr(devices, "list_devices", list)
    with pytest.raises(AudioDeviceError, match="no sound input device found"):
        select_device("anything", "input")
    with pytest.raises(AudioDeviceError, match="no sound output device found"):
        select_device(None, "output")


def test_no_devices_gives_a_clear_message(monkeypatch):
    monkeypatch.setattr(devices, "list_devices", list)
    with pytest.raises(AudioDeviceError, match="no sound input device found"):
        devices.open_input()
    with pytest.raises(AudioDeviceError, match="no sound output device found"):
        devices.open_output()


def test_missing_sounddevice_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now fails as if it were not installed
    with pytest.raises(AudioDeviceError, match="pip install sounddevice"):
        list_devices()


# ------------------------------------------------------------- real playback and capture on PulseAudio

PULSE_RATE = 48000


def _refresh_portaudio():
    """PortAudio reads the device list once at start; re-read it now that the test daemon runs."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    """A private PulseAudio daemon with a null sink `spk`; its monitor is the default input (a loopback)."""
    require_program("pulseaudio", "pactl", "pacat", apt="pulseaudio pulseaudio-utils")
    require_library("portaudio", apt="libportaudio2")
    root = tmp_path_factory.mktemp("pulse")
    env = {
        "XDG_RUNTIME_DIR": root / "run",
        "PULSE_RUNTIME_PATH": root / "run",
        "PULSE_STATE_PATH": root / "state",
        "HOME": root / "home",
        "XDG_CONFIG_HOME": root / "cfg",
    }
    for d in env.values():
        d.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, str(v))
        # Not daemonized: the test owns the process and reaps it (a daemon would linger as a zombie).
        daemon = subprocess.Popen(
            [
                "pulseaudio",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-n",
                "--use-pid-file=no",
                "-L",
                "module-native-protocol-unix",
                "-L",
                f"module-null-sink sink_name=spk rate={PULSE_RATE} channels=1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], check=False, capture_output=True, timeout=10).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                daemon.kill()
                pytest.fail("the test PulseAudio daemon did not start")
            time.sleep(0.1)
        subprocess.run(["pactl", "set-default-sink", "spk"], check=True, timeout=10)
        subprocess.run(["pactl", "set-default-source", "spk.monitor"], check=True, timeout=10)
        # An idle null sink stalls for ~2 s when a stream starts; keep it busy with silence.
        keepalive = subprocess.Popen(
            ["pacat", "-p", "-d", "spk", "--raw", "--latency-msec=10"], stdin=subprocess.DEVNULL
        )
        time.sleep(2.5)
        _refresh_portaudio()
        try:
            yield
        finally:
            for proc in (keepalive, daemon):
                proc.terminate()
                proc.wait(timeout=10)
    _refresh_portaudio()


def _capture_while(fn, seconds):
    got = []
    with devices.open_input(rate=16000) as mic:
        # A fresh PulseAudio stream can take a moment to deliver; start playing once capture runs.
        first = mic.read(timeout=5.0)
        assert first is not None, "capture delivered nothing"
        t = threading.Thread(target=fn)
        t.start()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            block = mic.read(timeout=0.2)
            if block is not None:
                got.append(block)
        t.join()
    return np.concatenate(got)


@pytest.mark.slow
def test_playback_is_captured_through_the_loopback(pulse):
    assert any(d.name == "pulse" for d in list_devices())
    rate = 24000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)  # 1 s
    y = _capture_while(lambda: devices.play(tone, rate), 2.0)
    loud = y[np.abs(y) > 0.05]
    assert len(loud) > 0.8 * 16000, len(loud)  # about 1 s of the tone came back at 16 kHz
    assert 0.45 < np.max(np.abs(y)) < 0.55
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 440) < 5


@pytest.mark.slow
def test_stop_drops_queued_playback(pulse):
    rate = 24000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(4 * rate) / rate)).astype(np.float32)  # 4 s
    out = devices.open_output(rate=rate).start()
    writer = threading.Thread(target=lambda: out.write(tone))

    def play_then_stop():
        writer.start()
        time.sleep(0.5)
        out.stop()  # barge-in

    y = _capture_while(play_then_stop, 2.5)
    writer.join(timeout=5)
    assert not writer.is_alive()  # the blocked write returned when playback was stopped
    out.close()
    heard_s = np.sum(np.abs(y) > 0.05) / 16000
    assert 0.1 < heard_s < 1.5, heard_s  # far less than the 4 s that were queued
