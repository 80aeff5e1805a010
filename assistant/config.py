"""Settings of the assistant: which models to load, how the server listens, and one conversation's session.

Each is a documented dataclass validated with ValueError, so a bad CLI flag or a bad `session.update`
field becomes a message the user can act on.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from dlm_core.presets import AUTO, check_knob_preset
from dlm_core.sampler import SamplerConfig
from turn_taking.endpoint import EAGERNESS, EndpointConfig
from turn_taking.vad import VadConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_PRESET = AUTO  # the loaded model's own decoding ("balanced" for the bundled model)
DEFAULT_INSTRUCTIONS = "You are a helpful voice assistant. Answer briefly."
MODALITIES = ("audio", "text")
MAX_REPLY_TOKENS = 128  # a spoken reply longer than this is a monologue
ENV_PRESET = "DLM_PRESET"
DEFAULT_AUDIO_LEAD_MS = 500.0  # playback buffer the client keeps; covers network jitter on a LAN
ENV_API_KEY = "DLM_API_KEY"
ENV_LM_API_KEY = "DLM_LM_API_KEY"  # the key a remote LM server wants (serve --lm-url)
REMOTE_FAMILY = "remote"  # the `family` of an LM reached over the network: it decodes as its server says
MIN_API_KEY_CHARS = 16  # a key short enough to guess is no key
DEFAULT_EAGERNESS = "auto"  # the server's default turn detection is semantic_vad
DEFAULT_IDLE_TIMEOUT_S = 600.0  # a client that sends nothing for 10 minutes has gone away
DEFAULT_MAX_SESSIONS = 8  # each speaking session costs LM steps and piper calls on the same few cores
DEFAULT_MAX_SESSIONS_PER_CLIENT = 4  # so that one client address cannot take every session
TOOL_CHOICES = ("auto", "none", "required")


@dataclass
class ModelsConfig:
    """Which models one process loads (once): the diffusion LM, Whisper and the piper voice."""

    model: str | None = None  # checkpoint dir or hub id; None: env DLM_MODEL, then the bundled model
    asr_model: str | None = (
        None  # CTranslate2 Whisper dir / name; None: env DLM_ASR_MODEL, then bundled tiny.en
    )
    voice: str | None = None  # piper .onnx voice; None: env DLM_TTS_VOICE, then the bundled joe voice
    device: str = "cpu"  # torch device for the LM ("cpu", "cuda")
    preset: str = field(default_factory=lambda: os.environ.get(ENV_PRESET) or DEFAULT_PRESET)
    # Replies from an OpenAI-compatible chat-completions server (http(s)://host:port/v1) instead of the
    # in-process LM; `model` is then not loaded. lm_model: the served model (None: the first it lists).
    lm_url: str | None = None
    lm_api_key: str | None = field(default_factory=lambda: os.environ.get(ENV_LM_API_KEY) or None)
    lm_model: str | None = None

    def __post_init__(self):
        check_knob_preset(self.preset)
        if self.lm_url is not None and urlsplit(self.lm_url).scheme not in ("http", "https"):
            raise ValueError(f"the LM URL looks like http://host:port/v1, got {self.lm_url!r}")


@dataclass
class ServerConfig:
    """The HTTP + websocket server, and who may use it.

    Bound to loopback (the default) it serves anyone on this machine without a key; bound elsewhere it
    needs an API key unless the user explicitly passes insecure_no_auth. Browsers are told apart by their
    Origin header: only the server's own page and the origins listed in allow_origins may open the
    Realtime websocket, so a page on another site cannot drive the assistant."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: pick a free port
    max_sessions: int = DEFAULT_MAX_SESSIONS  # websocket sessions served at once; more are refused
    # Sessions one client address may hold at once; None: DEFAULT_MAX_SESSIONS_PER_CLIENT, or max_sessions
    # when that is smaller.
    max_sessions_per_client: int | None = None
    metrics_turns: int = 200  # recent turns kept for /metrics
    api_key: str | None = field(default_factory=lambda: os.environ.get(ENV_API_KEY) or None)
    insecure_no_auth: bool = False  # serve beyond loopback without a key (the user said so)
    allow_origins: tuple[str, ...] = ()  # browser origins besides the server's own page, e.g. "https://x.y"
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S  # a client silent this long is disconnected

    def __post_init__(self):
        if not (0 <= self.port <= 65535):
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if not isinstance(self.max_sessions, int) or self.max_sessions < 1:
            raise ValueError(f"max_sessions must be a positive integer, got {self.max_sessions!r}")
        if self.max_sessions_per_client is None:
            self.max_sessions_per_client = min(DEFAULT_MAX_SESSIONS_PER_CLIENT, self.max_sessions)
        per_client = self.max_sessions_per_client
        if not isinstance(per_client, int) or not 1 <= per_client <= self.max_sessions:
            raise ValueError(
                f"max_sessions_per_client must be in [1, {self.max_sessions}] (at most max_sessions), "
                f"got {per_client!r}"
            )
        if self.metrics_turns < 1:
            raise ValueError(f"metrics_turns must be >= 1, got {self.metrics_turns}")
        if self.idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {self.idle_timeout_s}")
        if self.api_key is not None and len(self.api_key) < MIN_API_KEY_CHARS:
            raise ValueError(f"the API key must have at least {MIN_API_KEY_CHARS} characters")
        self.allow_origins = tuple(o.rstrip("/") for o in self.allow_origins)
        for origin in self.allow_origins:
            if "://" not in origin:
                raise ValueError(f"an allowed origin looks like https://host[:port], got {origin!r}")
        if not is_loopback(self.host) and self.api_key is None and not self.insecure_no_auth:
            raise ValueError(
                f"serving on {self.host} (beyond this machine) needs an API key: pass --api-key or set "
                f"{ENV_API_KEY}, or pass --insecure-no-auth to let anyone on the network in"
            )

    @property
    def needs_key(self) -> bool:
        return self.api_key is not None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond this machine


@dataclass
class DlmKnobs:
    """The diffusion speed/quality knob (the `session.dlm` extension of the Realtime protocol)."""

    preset: str = DEFAULT_PRESET  # "auto" (the model's own decoding) | "fastest" | "balanced" | "quality"
    threshold: float | None = None  # confidence needed to commit a token in parallel; None: the preset's
    max_steps_per_block: int | None = None  # step cap per block; None: the preset's

    def __post_init__(self):
        check_knob_preset(self.preset)
        if self.threshold is not None and not (0.0 <= self.threshold <= 1.0):
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")
        if self.max_steps_per_block is not None and (
            not isinstance(self.max_steps_per_block, int) or self.max_steps_per_block < 1
        ):
            raise ValueError(
                f"max_steps_per_block must be a positive integer, got {self.max_steps_per_block!r}"
            )

    def sampler(self, max_new_tokens: int, family: str) -> SamplerConfig | RemoteSampling:
        """The sampler for a reply of the loaded `family` (auto: that family's own decoding); for a
        remote LM, the knobs themselves, which its server turns into a sampler."""
        if family == REMOTE_FAMILY:
            return RemoteSampling(self, max_new_tokens)
        over = {"max_new_tokens": max_new_tokens}
        if self.threshold is not None:
            over["threshold"] = self.threshold
        if self.max_steps_per_block is not None:
            over["max_steps_per_block"] = self.max_steps_per_block
        if self.preset == AUTO:
            return SamplerConfig.for_family(family, **over)
        return SamplerConfig.preset(self.preset, **over)


@dataclass(frozen=True)
class RemoteSampling:
    """What a reply asks of a remote LM: the session's knobs (sent as the `dlm` extension) and a length."""

    knobs: DlmKnobs
    max_new_tokens: int


@dataclass
class SessionConfig:
    """One conversation's settings; the Realtime `session` object maps onto these fields."""

    instructions: str = DEFAULT_INSTRUCTIONS  # the system prompt
    output_modalities: tuple[str, ...] = ("audio",)  # ("audio",) speaks (with a transcript); ("text",) writes
    turn_detection: VadConfig | None = field(default_factory=VadConfig)  # None: manual commit
    # semantic_vad's eagerness ("low", "medium", "high", "auto"): the end of a turn is judged from what was
    # said; None: server_vad, silence only (turn_detection.silence_duration_ms).
    eagerness: str | None = DEFAULT_EAGERNESS
    create_response: bool = True  # server VAD: answer as soon as a turn ends
    interrupt_response: bool = True  # server VAD: user speech during a reply cancels it (barge-in)
    max_output_tokens: int = MAX_REPLY_TOKENS
    # Reply audio is sent at most this far ahead of real-time playback; the rest waits on the server, where
    # a barge-in can still drop it. None: send as fast as it is synthesized.
    audio_lead_ms: float | None = DEFAULT_AUDIO_LEAD_MS
    dlm: DlmKnobs = field(default_factory=DlmKnobs)
    # The client's functions (Realtime session.tools: {"type": "function", name, description, parameters}),
    # checked by realtime_schema; the model calls them and the client runs them.
    tools: tuple[dict, ...] = ()
    # "auto" (the model decides), "none" (no tools), "required" (the reply must call one), or
    # {"type": "function", "name": ...} (it must call that one).
    tool_choice: str | dict = "auto"
    # The in-process tools (time and date, arithmetic, units, timers), beside the client's functions.
    builtin_tools: bool = True

    def __post_init__(self):
        self.tools = tuple(self.tools)
        choice = self.tool_choice
        if not (choice in TOOL_CHOICES or (isinstance(choice, dict) and isinstance(choice.get("name"), str))):
            raise ValueError(f"tool_choice must be one of {TOOL_CHOICES} or a named function, got {choice!r}")
        self.output_modalities = tuple(self.output_modalities)
        if len(self.output_modalities) != 1 or self.output_modalities[0] not in MODALITIES:
            raise ValueError(
                f"output_modalities must be ['audio'] or ['text'], got {list(self.output_modalities)}"
            )
        if self.eagerness is not None and self.eagerness not in EAGERNESS:
            raise ValueError(f"eagerness must be one of {sorted(EAGERNESS)} or None, got {self.eagerness!r}")
        if self.audio_lead_ms is not None and self.audio_lead_ms < 0:
            raise ValueError(f"audio_lead_ms must be >= 0 or None, got {self.audio_lead_ms}")
        if not isinstance(self.max_output_tokens, int) or self.max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be a positive integer, got {self.max_output_tokens!r}")

    @property
    def endpointing(self) -> EndpointConfig | None:
        """How the listener ends turns (None: manual commits)."""
        if self.turn_detection is None:
            return None
        semantic = EAGERNESS[self.eagerness] if self.eagerness is not None else None
        return EndpointConfig(vad=self.turn_detection, semantic=semantic)

    @property
    def speaks(self) -> bool:
        return "audio" in self.output_modalities

    def sampler(self, family: str) -> SamplerConfig | RemoteSampling:
        return self.dlm.sampler(self.max_output_tokens, family)

    def replace(self, **kw) -> SessionConfig:
        return replace(self, **kw)
