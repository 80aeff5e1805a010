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

    lm: Any  # dlm_core.engine.DlmEngine, assistant.remote_lm.RemoteLM, or None where a command needs none
    asr: LockedTranscriber | None = None
    tts: Synthesizer | None = None
    tts_lock: threading.Lock = field(default_factory=threading.Lock)  # piper is not re-entrant
    judge: Any = None  # turn_taking.judge.TurnJudge for semantic endpointing; None: silence only

    @classmethod
    def load(
        cls,
        models: ModelsConfig,
        lm: bool = True,
        asr: bool = True,
        tts: bool = True,
        judge: bool | None = None,
    ) -> Engines:
        """Raises FileNotFoundError (with what to install or pass) when a model is missing. `judge`
        (default: with the ASR) loads the end-of-turn judge."""
        engine = None
        if lm and models.lm_url:  # replies from an LM server (serve --lm-url)
            from assistant.remote_lm import RemoteLM

            engine = RemoteLM.connect(models.lm_url, models.lm_api_key, models.lm_model)
        elif lm:
            from dlm_core.engine import DlmEngine  # torch loads only for commands that need the LM

            engine = DlmEngine.load(models.model, device=models.device)
        turn_judge = None
        if asr if judge is None else judge:
            from turn_taking.judge import TurnJudge

            turn_judge = TurnJudge.load()
        return cls(
            lm=engine,
            asr=LockedTranscriber(Transcriber.load(models.asr_model)) if asr else None,
            tts=Synthesizer.load(models.voice) if tts else None,
            judge=turn_judge,
        )

    def describe(self) -> dict:
        """Which models are loaded (for /healthz)."""
        lm_path = getattr(getattr(self.lm, "loaded", None), "path", None)
        return {
            "lm": str(lm_path) if lm_path else getattr(self.lm, "url", None),
            "lm_family": getattr(self.lm, "family", None),
            "asr": self.asr.name if self.asr else None,
            "tts": str(self.tts.path) if self.tts else None,
            "turn_judge": None if self.judge is None else ("audio+text" if self.judge.audio else "text"),
        }

    def close(self) -> None:
        if self.lm is not None:
            self.lm.close()
