"""Serve several conversations at once from one diffusion LM.

`DlmEngine.reply(messages)` returns a plain synchronous iterator of `Committed` chunks. Each reply
runs the sampler (`dlm_core.sampler.generate`) in the caller's thread; the sampler's forward passes
go to one worker thread, which merges the pending requests of all sessions into a single batched
forward (left padding, with `key_valid` and explicit positions so every row keeps its own
positions, cache and canvas) and hands each row its logits back. Closing a reply's iterator cancels
it before its next forward pass.

Prompt cache across turns: for "block_causal" and "causal" models each `session_id` keeps the
keys/values of its conversation (prompt and committed reply blocks). The next turn reuses the
longest common token prefix with the new prompt, cut to a whole model block, which is exact. For
"bidirectional" models a cached prefix would be an approximation that grows staler every turn, so
those sessions recompute their prompt each turn (within a turn the sampler's prefix/dual cache
still applies).

Faithful decoding (`SamplerConfig.for_family`, the default for real families when `reply` gets no
config) runs the family authors' own decoder (`dlm_core.faithful`); its model calls go to the same
worker thread, one at a time between batched passes, so sessions never run the model concurrently.

Long conversations: `prompt_ids` drops the oldest non-system messages until the prompt and the reply
fit the context; `messages_to_drop` tells a caller that keeps its own history how many that is.

Tools: `reply(messages, tools=...)` offers the model functions to call (dlm_core.tool_calls has the
convention and the parser for the calls in its reply). Tool results ("tool" messages) are dropped
together with the message that asked for them, so a trimmed chat never starts with an orphan result.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from dlm_core.cache import KVCache
from dlm_core.checkpoints import FAMILY_BY_NAME
from dlm_core.decoding import Committed
from dlm_core.sampler import PromptCache, SamplerConfig, generate, model_forward

MAX_BATCH = 8  # most rows merged into one forward pass
BATCH_WAIT_S = 0.02  # longest a ready request waits for other running sessions to submit
MAX_SESSIONS = 64  # conversations whose prompt cache is kept (least recently used dropped)
BATCH_SIZES_KEPT = 1000  # recent batch sizes kept in `batch_sizes`, for tests and benchmarks


@dataclass
class _Request:
    tokens: torch.Tensor | None  # [1, S]
    positions: torch.Tensor | None  # [1, S]
    cache: KVCache | None
    keep_q: torch.Tensor | None  # query indices whose keys/values join `cache`
    want: tuple[int, int] | None  # query range whose logits are returned
    call: Callable[[], torch.Tensor] | None = None  # a faithful decoder's own model call, run alone
    done: threading.Event = field(default_factory=threading.Event)
    result: torch.Tensor | None = None
    error: BaseException | None = None


class DlmEngine:
    def __init__(
        self, loaded, device: str = "cpu", max_batch: int = MAX_BATCH, batch_wait_s: float = BATCH_WAIT_S
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.loaded = loaded
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.tokenizer = loaded.tokenizer
        self.family = getattr(loaded, "family", "dlm_voice")
        # Whether tools may be offered unasked: the chat template renders them (the model was trained on
        # its own call format), or it is one of the real families, large instruction-tuned models that can
        # follow the plain-text tool list. A checkpoint of ours whose template has no tools predates them.
        self.knows_tools = self.tokenizer.handles_tools or self.family in FAMILY_BY_NAME
        self.tokenizer.letterless_ids  # noqa: B018 -- worked out at load, not in the first reply's latency
        self.context_len = self.model.cfg.max_seq_len
        self.max_batch, self.batch_wait_s = max_batch, batch_wait_s
        self.forward_calls = 0  # batched forward passes run (all sessions together)
        self.batch_sizes: list[int] = []  # rows per forward pass, most recent last (bounded)
        self._queue: list[_Request] = []
        self._running = 0  # replies inside a sampler step right now
        self._cv = threading.Condition()
        self._closed = False
        self._sessions: OrderedDict[str, PromptCache] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self._keeps_cache = self.model.cfg.attention in ("block_causal", "causal")
        self._worker = threading.Thread(target=self._serve, name="dlm-engine", daemon=True)
        self._worker.start()

    @classmethod
    def load(cls, spec: str | None = None, device: str = "cpu", **kw) -> DlmEngine:
        from dlm_core.checkpoints import load_checkpoint, resolve_model

        return cls(load_checkpoint(resolve_model(spec), device=device), device=device, **kw)

    # ---- the public iterator -------------------------------------------------------------

    def default_config(self, **overrides) -> SamplerConfig:
        """The loaded family's default decoding (`SamplerConfig.for_family`): the authors' own decoder
        ("faithful") for LLaDA, Dream, SDAR, Fast-dLLM v2 and BD3LM; the "balanced" preset else."""
        return SamplerConfig.for_family(self.family, **overrides)

    def reply(
        self,
        messages: list[dict],
        cfg: SamplerConfig | None = None,
        session_id: str | None = None,
        tools: list[dict] | None = None,
        prefix: str = "",
    ) -> Iterator[Committed]:
        """Stream the assistant's reply to `messages`; close the iterator to cancel. cfg None: the
        family's `default_config()`. Faithful decoding keeps no cache across turns (no original does).
        tools: functions the model may call (Hugging Face form); its calls arrive as reply text, which
        `dlm_core.tool_calls.ToolCallParser` turns into events. prefix: text the reply is made to start
        with (it joins the prompt; the stream holds only what follows), e.g. the opening of a tool call
        that tool_choice requires."""
        if self._closed:
            raise RuntimeError("engine is closed")
        cfg = cfg or self.default_config()
        prompt = self.prompt_ids(messages, cfg.max_new_tokens, tools)
        if prefix:  # generate() checks that the prompt still fits with it
            prompt = prompt + self.tokenizer.encode(prefix)
        session_id = session_id if cfg.strategy != "faithful" else None  # no original keeps a cache
        cache = self._take_session(session_id)
        try:  # generate() validates eagerly, so bad input raises here, not on the first next()
            gen = generate(
                self.model,
                self.tokenizer,
                prompt,
                cfg,
                forward=self._forward,
                prompt_cache=cache,
                run=self._exclusive,
            )
        except BaseException:
            self._put_session(session_id, cache)
            raise
        return self._run(gen, cache, session_id)

    def prompt_ids(
        self, messages: list[dict], max_new_tokens: int, tools: list[dict] | None = None
    ) -> list[int]:
        """The chat prompt, dropping the oldest non-system messages until it fits the context."""
        _, ids = self._fit(messages, max_new_tokens, tools)
        if len(ids) > self.context_len - max_new_tokens:
            raise ValueError(
                f"the last message alone ({len(ids)} tokens) does not fit the context "
                f"({self.context_len}) with max_new_tokens {max_new_tokens}"
            )
        return ids

    def messages_to_drop(
        self, messages: list[dict], max_new_tokens: int, tools: list[dict] | None = None
    ) -> int:
        """How many of the oldest non-system messages to drop so that the chat prompt plus
        `max_new_tokens` fits the context: the fewest that suffice, and never the last non-system
        message (if even that alone does not fit, all the others). A "tool" message goes with the
        message before it (the call it answers), so the count never stops inside such a group, and the
        last group always stays. Raises ValueError for an empty or malformed list, or a
        max_new_tokens that leaves no room."""
        return self._fit(messages, max_new_tokens, tools)[0]

    def _fit(
        self, messages: list[dict], max_new_tokens: int, tools: list[dict] | None = None
    ) -> tuple[int, list[int]]:
        """(messages_to_drop, the prompt's ids without them). A binary search over the drop count:
        dropping a message never lengthens the prompt, so the fewest drops that fit is found with
        O(log n) tokenizations instead of one per dropped message."""
        _check_messages(messages)
        budget = self.context_len - max_new_tokens
        if budget < 1:
            raise ValueError(
                f"max_new_tokens {max_new_tokens} leaves no room in a context of {self.context_len}"
            )
        droppable = [i for i, m in enumerate(messages) if m["role"] != "system"]
        # Drop counts that do not leave a "tool" message first, its call gone; the last one stays.
        cuts = [0] + [d for d in range(1, len(droppable)) if messages[droppable[d]]["role"] != "tool"]
        tried: dict[int, list[int]] = {}

        def prompt(drop: int) -> list[int]:
            if drop not in tried:
                gone = set(droppable[:drop])
                kept = [m for i, m in enumerate(messages) if i not in gone]
                # Without tools the plain call, so any tokenizer with chat_prompt(messages) will do.
                tried[drop] = (
                    self.tokenizer.chat_prompt(kept, tools) if tools else self.tokenizer.chat_prompt(kept)
                )
            return tried[drop]

        if len(prompt(0)) <= budget:  # the common case: one tokenization
            return 0, prompt(0)
        lo, hi = min(1, len(cuts) - 1), len(cuts) - 1  # the answer is cuts[k] for a k in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            if len(prompt(cuts[mid])) <= budget:
                hi = mid
            else:
                lo = mid + 1
        return cuts[lo], prompt(cuts[lo])

    def _run(self, gen, cache: PromptCache | None, session_id: str | None) -> Iterator[Committed]:
        try:
            while True:
                with self._cv:
                    self._running += 1
                try:
                    item = next(gen)
                except StopIteration:
                    return
                finally:
                    with self._cv:
                        self._running -= 1
                        self._cv.notify_all()
                yield item
                if item.done:
                    return
        finally:
            gen.close()
            self._put_session(session_id, cache)

    def _take_session(self, session_id: str | None) -> PromptCache | None:
        if not (session_id and self._keeps_cache):
            return None
        with self._sessions_lock:
            cache = self._sessions.pop(session_id, None)
        return cache or PromptCache(KVCache(self.model.cfg.n_layers))

    def _put_session(self, session_id: str | None, cache: PromptCache | None) -> None:
        if not (session_id and cache is not None):
            return
        with self._sessions_lock:
            self._sessions[session_id] = cache
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)

    def session_cached_tokens(self, session_id: str) -> int:
        """How many tokens of this conversation have cached keys/values (0 if none)."""
        with self._sessions_lock:
            cache = self._sessions.get(session_id)
        return len(cache.ids) if cache else 0

    def drop_session(self, session_id: str) -> None:
        with self._sessions_lock:
            self._sessions.pop(session_id, None)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._worker.join(timeout=5)

    # ---- batching ------------------------------------------------------------------------

    def _forward(self, tokens, positions, cache, keep_q, want) -> torch.Tensor:
        """The sampler's forward: queue the request and wait for the worker's batched pass."""
        return self._submit(_Request(tokens, positions, cache, keep_q, want))

    def _exclusive(self, call: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A faithful decoder's model call, run by the worker between batched passes."""
        return self._submit(_Request(None, None, None, None, None, call=call))

    def _submit(self, req: _Request) -> torch.Tensor:
        with self._cv:
            if self._closed:
                raise RuntimeError("engine is closed")
            self._queue.append(req)
            self._cv.notify_all()
        req.done.wait()
        if req.error is not None:
            raise req.error
        return req.result

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    for req in self._queue:
                        req.error = RuntimeError("engine is closed")
                        req.done.set()
                    return
                # Wait (briefly) until every session inside a step has submitted its request.
                deadline = time.monotonic() + self.batch_wait_s
                while len(self._queue) < min(self._running, self.max_batch) and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                batch = self._take_batch()
            try:
                with torch.inference_mode():
                    results = [batch[0].call()] if batch[0].call else self._batched_forward(batch)
                for req, out in zip(batch, results):
                    req.result = out
            except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiting session
                for req in batch:
                    req.error = exc
            self.forward_calls += 1
            self.batch_sizes = (self.batch_sizes + [len(batch)])[-BATCH_SIZES_KEPT:]
            for req in batch:
                req.done.set()

    def _take_batch(self) -> list[_Request]:
        """The next queued requests to run together: a faithful call alone, else up to max_batch
        batchable requests in queue order (caller holds the lock)."""
        if self._queue[0].call is not None:
            return [self._queue.pop(0)]
        batch = []
        for req in self._queue:
            if req.call is not None or len(batch) == self.max_batch:
                break
            batch.append(req)
        self._queue = self._queue[len(batch) :]
        return batch

    def _batched_forward(self, batch: list[_Request]) -> list[torch.Tensor]:
        model = self.model
        if len(batch) == 1:
            r = batch[0]
            return [_single_forward(model, r)]
        cfg = model.cfg
        B = len(batch)
        S = max(r.tokens.shape[1] for r in batch)
        dev = self.device
        tokens = torch.full((B, S), self.tokenizer.special.pad, dtype=torch.long, device=dev)
        positions = torch.zeros(B, S, dtype=torch.long, device=dev)
        valid = torch.zeros(B, S, dtype=torch.bool, device=dev)
        for i, r in enumerate(batch):  # left padding: real tokens end at column S
            s = r.tokens.shape[1]
            tokens[i, S - s :] = r.tokens[0]
            positions[i, S - s :] = r.positions[0]
            valid[i, S - s :] = True
        merged = None
        if any(r.cache is not None for r in batch):
            merged = KVCache.batched([r.cache for r in batch], cfg.n_layers)  # [B, T] columns
        T = merged.length if merged is not None else 0  # cached columns; this call's follow them
        # Every row's new keys/values land in `merged`; each row then takes back the columns it keeps.
        with merged.writing() if merged is not None else contextlib.nullcontext():
            hidden = model(tokens, positions, cache=merged, key_valid=valid, hidden_only=True)  # [B, S, dim]
        outs = []
        for i, r in enumerate(batch):
            off = S - r.tokens.shape[1]
            outs.append(model.lm_head(hidden[i : i + 1, off + r.want[0] : off + r.want[1]]).float())
            if r.cache is not None and r.keep_q is not None and len(r.keep_q):
                r.cache.append_row(merged, i, T + off + r.keep_q.to(dev))
        return outs


def _check_messages(messages: list[dict]) -> None:
    if not messages:
        raise ValueError("messages is empty")
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"each message needs 'role' and 'content', got {m!r}")


def _single_forward(model, r: _Request) -> torch.Tensor:
    return model_forward(model)(r.tokens, r.positions, r.cache, r.keep_q, r.want)
