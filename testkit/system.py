"""The system parts (Debian packages) some tests need, and what a test does when one is missing.

    require_program("pulseaudio", "pactl", apt="pulseaudio pulseaudio-utils")
    require_path(Path("/usr/bin/chromium"), apt="chromium")
    require_library("portaudio", apt="libportaudio2")

A missing part skips the test with one line that names the package to install; where the run demands every
part (`DLM_REQUIRE_SYSTEM=1`, which `.ci/run` sets) it fails instead, so a CI machine that lost a package
cannot pass by skipping.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
from pathlib import Path

REQUIRE_ENV = "DLM_REQUIRE_SYSTEM"


def missing(what: str, apt: str) -> None:
    """Skip (or, under DLM_REQUIRE_SYSTEM=1, fail) because `what` is not on this machine."""
    import pytest

    why = f"{what} is not installed: apt-get install {apt}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(why)
    pytest.skip(why)


def require_program(*names: str, apt: str) -> None:
    """Every program in `names` is on PATH."""
    for name in names:
        if shutil.which(name) is None:
            missing(name, apt)


def require_path(path: Path, apt: str) -> None:
    """A file a package installs at a fixed place (e.g. /usr/bin/chromium) exists."""
    if not path.exists():
        missing(str(path), apt)


def require_library(name: str, apt: str) -> None:
    """A shared library (as ctypes finds it: "portaudio" for libportaudio.so.2) can be loaded."""
    if ctypes.util.find_library(name) is None:
        missing(f"lib{name}", apt)
