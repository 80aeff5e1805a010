"""The models of one process, loaded once and shared by every session."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.config import ModelsConfig
from audio.asr import Transcriber
from audio.tts import Synthesizer


class LockedTranscriber:
    """One Whisper model shared by every session: one transcription at a time."""

    def __init__(self, asr: Transcriber):
        self.asr, self._lock = asr, threading.Lock()
        self.name = asr.name

    def transcribe(self, x: np.ndarray):
        with self._lock:
            return self.asr.transcribe(x)


@dataclass
class Engines:
    """The diffusion LM, Whisper and the piper voice; a command loads only the ones it needs."""

    lm: Any  # dlm_core.engine.DlmEngine (or None where a command needs no LM)
    asr: LockedTranscriber | None = None
    tts: Synthesizer | None = None
    tts_lock: threading.Lock = field(default_factory=threading.Lock)  # piper is not re-entrant

    @classmethod
    def load(cls, models: ModelsConfig, lm: bool = True, asr: bool = True, tts: bool = True) -> Engines:
        """Raises FileNotFoundError (with what to install or pass) when a model is missing."""
        engine = None
        if lm:
            from dlm_core.engine import DlmEngine  # torch loads only for commands that need the LM

            engine = DlmEngine.load(models.model, device=models.device)
        return cls(
            lm=engine,
            asr=LockedTranscriber(Transcriber.load(models.asr_model)) if asr else None,
            tts=Synthesizer.load(models.voice) if tts else None,
        )

    def describe(self) -> dict:
        """Which models are loaded (for /healthz)."""
        lm_path = getattr(getattr(self.lm, "loaded", None), "path", None)
        return {
            "lm": str(lm_path) if lm_path else None,
            "lm_family": getattr(self.lm, "family", None),
            "asr": self.asr.name if self.asr else None,
            "tts": str(self.tts.path) if self.tts else None,
        }

    def close(self) -> None:
        if self.lm is not None:
            self.lm.close()
