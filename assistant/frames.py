"""Every frame that moves between the pipeline's stages and out to a transport (websocket, speakers).

Two tiers, as in pipecat:
- SystemFrame: control and status (speech started/stopped, interruption, response done, errors). Never
  dropped, never made stale by an interruption.
- DataFrame: content in order (reply text, reply audio). A data frame whose turn is no longer current is
  dropped where it is queued (`Session.emit`) and where it is taken out (`Session.next_frame`), which is
  how barge-in guarantees that no audio of an interrupted reply reaches the client after the interruption.

Every frame carries the turn id it belongs to (see turns.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    turn_id: int


@dataclass
class SystemFrame(Frame):
    pass


@dataclass
class DataFrame(Frame):
    pass


# -------------------------------------------------------------------------------------------- system


@dataclass
class UserSpeechStarted(SystemFrame):
    """The VAD heard the user start talking (and, with barge-in on, the reply was interrupted)."""

    item_id: str  # the user item this speech will become
    audio_start_ms: float  # stream position (padded start, as OpenAI reports it)


@dataclass
class UserSpeechStopped(SystemFrame):
    item_id: str
    audio_end_ms: float


@dataclass
class AudioCommitted(SystemFrame):
    """The user's audio became a conversation item (server VAD turn end, or a manual commit)."""

    item_id: str
    previous_item_id: str | None


@dataclass
class Interrupted(SystemFrame):
    """A reply was stopped (barge-in or response.cancel); the transport flushes its playback."""

    response_id: str
    item_id: str
    played_ms: float  # reply audio the listener has heard (estimated), which the history keeps


@dataclass(kw_only=True)
class ResponseDone(SystemFrame):
    """A response ended. Built with keywords only: it carries a dozen values, several of one type."""

    response_id: str
    item_id: str
    status: str  # "completed" | "cancelled" | "failed"
    text: str  # the reply as it stands in the history (cut to what was played when cancelled)
    modalities: tuple[str, ...]
    reason: str | None = None  # why it was cancelled / failed
    audio_ms: float = 0.0  # reply audio produced
    metrics: dict = field(default_factory=dict)  # latency_ms of this turn (see metrics.LatencyClock)
    calls: list = field(default_factory=list)  # the function_call items the response made, in order
    message_index: int | None = None  # the message item's output index; None: the reply said nothing
    metadata: dict | None = None
    p_complete: float | None = None  # the end-of-turn judge's verdict on the turn it answers (semantic_vad)


@dataclass
class ErrorFrame(SystemFrame):
    code: str
    message: str
    param: str | None = None
    event_id: str | None = None


@dataclass
class UserTranscript(SystemFrame):
    item_id: str
    text: str
    ok: bool = True  # False: transcription failed (text holds the reason)


@dataclass
class ItemDeleted(SystemFrame):
    """An item left the conversation without the client asking (the halves of a false start)."""

    item_id: str


@dataclass
class UserText(SystemFrame):
    """A typed user message was added to the conversation."""

    item_id: str
    previous_item_id: str | None
    text: str


@dataclass
class Notice(SystemFrame):
    """A transport's own message (an acknowledgement), queued so it keeps its place among the others."""

    payload: dict


# ---------------------------------------------------------------------------------------------- data
# Only the parts of a reply are data frames: the user's side of the conversation is never interrupted.


@dataclass
class ResponseStarted(SystemFrame):  # opens the reply even if it is cut at once
    response_id: str
    item_id: str  # the reply's message item (announced by MessageStarted once it has something to say)
    modalities: tuple[str, ...]
    metadata: dict | None = None  # e.g. {"source": "timer", "timer": {...}} for a reply nobody asked for


@dataclass
class MessageStarted(SystemFrame):
    """The reply's message item opens (its first words are coming, or the reply ends without any)."""

    response_id: str
    item_id: str
    output_index: int
    modalities: tuple[str, ...]


@dataclass
class FunctionCall(SystemFrame):
    """The model called a tool: an output item of the response, complete with its arguments."""

    response_id: str
    item_id: str
    output_index: int
    call_id: str
    name: str
    arguments: str  # JSON object text


@dataclass
class FunctionOutput(SystemFrame):
    """A tool's result joined the conversation (a built-in tool the server ran, or the client's)."""

    item_id: str
    previous_item_id: str | None
    call_id: str
    output: str


@dataclass
class TextDelta(DataFrame):
    response_id: str
    item_id: str
    text: str
    spoken: bool = True  # True: the transcript of reply audio; False: a text-only reply
    output_index: int = 0  # the message item's place among the response's output items


@dataclass
class AudioOut(DataFrame):
    response_id: str
    item_id: str
    samples: np.ndarray = field(repr=False)  # float32 [N] at `rate`
    rate: int
    text: str  # the piece of the reply this audio speaks
    output_index: int = 0
