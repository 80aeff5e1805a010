"""Semantic endpointing: the end of a turn judged from what was said, and the reply speculated in the
pause. Real speech (piper), real Whisper, the real end-of-turn judge."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from assistant import frames as F
from assistant.session import Session
from audio import pcm
from testkit.speech import speech_samples
from tests.conftest import VOICE_PAIRS, session_config
from turn_taking import endpoint
from turn_taking.endpoint import (
    EAGERNESS,
    JUDGED_SILENCE_MS,
    EndpointConfig,
    Endpointer,
    EndpointError,
    SemanticConfig,
    TurnLikely,
    TurnTranscript,
)
from turn_taking.judge import TurnJudge
from turn_taking.vad import SpeechStopped, VadConfig

# Piper's fixed rendition (the same audio on every machine): a random one can hold a dip between words
# long enough to start a speculative transcription (VadConfig.pause_ms), which these tests do not expect.
FIXED = "piper-fixed"
FINISHED = "Please set a timer for ten minutes."
UNFINISHED = "I would like to book a table for"
CHUNK_MS = 20
SEMANTIC = EAGERNESS["medium"]
FRAME_TIMEOUT_S = 90
MID_PAUSE_MS = 2500


@pytest.fixture(scope="module")
def judge(engines) -> TurnJudge:
    assert engines.judge is not None, "the engines load the end-of-turn judge with the ASR"
    return engines.judge


@pytest.fixture(scope="module")
def asr(engines):
    return engines.asr


def silence(ms: float) -> np.ndarray:
    return np.zeros(pcm.ms_to_samples(ms, pcm.SAMPLE_RATE_ASR), np.float32)


def run(ep: Endpointer, x: np.ndarray) -> list:
    """Feed in live-sized chunks; wait for each speculative transcription as a fast machine would have
    it by the next chunk, so the decisions do not depend on this machine's load."""
    events, step = [], pcm.ms_to_samples(CHUNK_MS, pcm.SAMPLE_RATE_ASR)
    for i in range(0, len(x), step):
        events += ep.feed(x[i : i + step])
        ep.settle(60)
    return events


def stop_after_speech_ms(events: list) -> float:
    stopped = [e for e in events if isinstance(e, SpeechStopped)]
    assert len(stopped) == 1, events
    return stopped[0].confirmed_ms - stopped[0].audio_end_ms


def test_a_finished_request_ends_after_a_short_silence(asr, judge):
    with Endpointer(EndpointConfig(semantic=SEMANTIC), asr, judge=judge) as ep:
        events = run(ep, np.concatenate([silence(300), speech_samples(FINISHED, voice=FIXED), silence(3000)]))
    waited = stop_after_speech_ms(events)
    assert waited < SEMANTIC.max_wait_ms / 2, events  # ended on the judge's word, not the long wait
    assert any(isinstance(e, TurnLikely) for e in events)
    turn = next(e for e in events if isinstance(e, TurnTranscript))
    assert turn.p_complete >= SEMANTIC.threshold and turn.speculative


def test_an_unfinished_request_waits_for_the_long_silence(asr, judge):
    # Piper's fixed rendition: a random one was once heard as "... a table for it." (a whole sentence).
    unfinished = speech_samples(UNFINISHED, voice=FIXED)
    with Endpointer(EndpointConfig(semantic=SEMANTIC), asr, judge=judge) as ep:
        events = run(ep, np.concatenate([silence(300), unfinished, silence(3000)]))
    assert stop_after_speech_ms(events) >= SEMANTIC.max_wait_ms  # not cut off
    # A reply is prepared only shortly before the long wait runs out, not at every mid-sentence pause.
    (likely,) = [e for e in events if isinstance(e, TurnLikely)]
    assert likely.silence_ms >= SEMANTIC.max_wait_ms - EndpointConfig().prepare_reply_ms
    assert next(e for e in events if isinstance(e, TurnTranscript)).p_complete < SEMANTIC.threshold


# Thinking pauses (issue 29): piper's fixed rendition with a comma where the speaker pauses, so the voice
# keeps its unfinished tone there; the test stretches that pause to THINKING_PAUSE_MS of silence.
THINKING = [
    "When I get home, remind me to feed the cat.",  # after a subordinate clause
    "We should probably, leave at six.",  # after a word that needs a complement
]
THINKING_PAUSE_MS = 1000  # no reply may start in a pause up to 1 s where the speaker is plainly not done
COMMA_QUIET_MS = 60  # piper's comma is the first quiet stretch this long inside the clip


def at_the_comma(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The committed clip split around its first quiet stretch (the comma's pause)."""
    quiet = np.abs(x) <= pcm.AUDIBLE_LEVEL
    run = pcm.ms_to_samples(COMMA_QUIET_MS, pcm.SAMPLE_RATE_ASR)
    whole = np.convolve(quiet, np.ones(run), "valid") == run  # [N - run + 1] a whole run quiet there
    start = int(np.flatnonzero(whole)[0])
    end = start + int(np.argmin(quiet[start:]))  # the sound comes back
    assert 0 < start < end < len(x), (start, end, len(x))
    return x[:start], x[end:]


@pytest.mark.parametrize("text", THINKING)
def test_a_thinking_pause_where_the_speaker_is_not_done_does_not_end_the_turn(asr, judge, text):
    before, after = at_the_comma(speech_samples(text, voice=FIXED))
    pause_start_ms = (pcm.ms_to_samples(300, pcm.SAMPLE_RATE_ASR) + len(before)) / pcm.SAMPLE_RATE_ASR * 1000
    x = np.concatenate([silence(300), before, silence(THINKING_PAUSE_MS), after, silence(3000)])
    with Endpointer(EndpointConfig(semantic=SEMANTIC), asr, judge=judge) as ep:
        events = run(ep, x)
    stopped = [e for e in events if isinstance(e, SpeechStopped)]
    assert len(stopped) == 1 and stopped[0].audio_end_ms > pause_start_ms + THINKING_PAUSE_MS, events
    (turn,) = [e for e in events if isinstance(e, TurnTranscript)]
    assert text.split()[-1].strip(".").lower() in turn.text.lower(), turn  # the whole request, one turn


def test_the_words_before_a_thinking_pause_are_not_judged_finished_whatever_the_sound_says(judge):
    # What Whisper wrote for the first half in the tests above, its full stop included, heard as finished
    # by the sound and written with confidence: at most maybe finished, whose silence outlasts the pause.
    for words in ("When I get home.", "We should probably."):
        assert judge.p_complete(0.99, words, p_last_word=0.99) < SEMANTIC.threshold, words
    assert SEMANTIC.unsure_silence_ms > THINKING_PAUSE_MS
    assert judge.p_complete(0.9, "What time is it?", p_last_word=0.99) >= SEMANTIC.threshold


class FixedJudge:
    """A judge whose verdict is fixed: tests the state machine's bands, not the judge."""

    def __init__(self, p: float):
        self.p = p

    def p_audio(self, audio_16k):
        return None

    def p_complete(self, p_audio, text, p_last_word=None):
        return self.p


@pytest.mark.parametrize(
    "p, band",
    [(0.9, "complete"), (0.4, "unsure"), (0.05, "max")],
    ids=["finished", "maybe-finished", "unfinished"],
)
def test_each_verdict_band_ends_the_turn_after_its_silence(asr, p, band):
    cfg = SEMANTIC
    assert cfg.complete_silence_ms < cfg.unsure_silence_ms < cfg.max_wait_ms
    assert (cfg.threshold <= p) == (band == "complete")
    assert (cfg.unsure_threshold <= p) == (band != "max")
    with Endpointer(EndpointConfig(semantic=cfg), asr, judge=FixedJudge(p)) as ep:
        events = run(ep, np.concatenate([silence(300), speech_samples(FINISHED, voice=FIXED), silence(3000)]))
    waited = stop_after_speech_ms(events)
    wanted = {"complete": cfg.complete_silence_ms, "unsure": cfg.unsure_silence_ms, "max": cfg.max_wait_ms}[
        band
    ]
    # Never sooner than the band's silence; later only by what Whisper and a VAD frame take (run() waits
    # for the judge at each chunk, so the verdict is in when the silence has lasted pause_ms + one chunk).
    assert wanted <= waited < max(wanted, cfg.complete_silence_ms + 400) + 100, (band, waited)
    # The reply is prepared prepare_reply_ms before the band's silence runs out (at once when shorter).
    (likely,) = [e for e in events if isinstance(e, TurnLikely)]
    lead = EndpointConfig().prepare_reply_ms
    assert wanted - lead <= likely.silence_ms < max(wanted - lead, cfg.complete_silence_ms + 400) + 100
    assert likely.p_complete == p and likely.text.strip()
    assert ep.stats["ended_unsure"] == int(band == "unsure")


def heard_noise_floor(x: np.ndarray) -> bool:
    return 0.001 < float(np.sqrt(np.mean(x**2))) < 0.01


class ListeningJudge(FixedJudge):
    """Keeps the audio each pause's judgement heard."""

    def __init__(self, p: float):
        super().__init__(p)
        self.heard: list[np.ndarray] = []

    def p_audio(self, audio_16k):
        self.heard.append(audio_16k)
        return None


def test_the_judge_hears_the_same_silence_however_soon_the_pause_fires(asr):
    """The pause fires after VadConfig.pause_ms, but the judge is given JUDGED_SILENCE_MS of silence
    after the speech, as when it fired later: the added part is digital silence."""
    pause_ms = VadConfig().pause_ms
    assert pause_ms < JUDGED_SILENCE_MS
    judge = ListeningJudge(0.9)
    x = np.concatenate([silence(300), speech_samples(FINISHED, voice=FIXED), silence(3000)])
    x += np.random.default_rng(0).normal(0.0, 0.003, len(x)).astype(np.float32)  # a room's noise floor
    with Endpointer(EndpointConfig(semantic=SEMANTIC), asr, judge=judge) as ep:
        events = run(ep, x)
    turn = next(e for e in events if isinstance(e, TurnTranscript))
    heard = judge.heard[-1]  # the last pause's, which ended the turn
    added = pcm.ms_to_samples(JUDGED_SILENCE_MS - pause_ms, pcm.SAMPLE_RATE_ASR)
    paused = pcm.ms_to_samples(pause_ms, pcm.SAMPLE_RATE_ASR)
    assert not heard[-added:].any() and heard_noise_floor(heard[-added - paused : -added])
    # The speech ends JUDGED_SILENCE_MS before the end of what was heard (the audio starts at the
    # prefix padding before the speech start).
    padded_start_ms = max(0.0, turn.start_ms - VadConfig().prefix_padding_ms)
    heard_ms = pcm.samples_to_ms(len(heard), pcm.SAMPLE_RATE_ASR)
    assert heard_ms == pytest.approx(turn.end_ms - padded_start_ms + JUDGED_SILENCE_MS, abs=1)


def test_whispers_doubt_about_the_last_word_lowers_the_verdict():
    from turn_taking.judge import ALL, WORDS_ONLY, Words, combine

    # Without Whisper's word probability (its long path gives none), the fits made without it.
    plain = Words(p_twin=0.6, p_counts=0.6)
    assert combine(0.7, plain) == ALL(0.7, plain) and combine(None, plain) == WORDS_ONLY(None, plain)
    sure, doubtful = Words(0.6, 0.6, p_last_word=0.98), Words(0.6, 0.6, p_last_word=0.5)
    for p_audio in (0.7, None):  # with Smart Turn and without it
        assert combine(p_audio, doubtful) < combine(p_audio, sure)


def test_semantic_bands_are_validated():
    with pytest.raises(ValueError, match="unsure_silence_ms"):
        SemanticConfig(complete_silence_ms=500, unsure_silence_ms=300)
    with pytest.raises(ValueError, match="unsure_threshold"):
        SemanticConfig(threshold=0.4, unsure_threshold=0.6)
    for level in EAGERNESS.values():
        assert level.complete_silence_ms <= level.unsure_silence_ms <= level.max_wait_ms


def test_without_a_judge_the_silence_rule_stays(asr):
    cfg = EndpointConfig(semantic=SEMANTIC)  # asked for, but no judge to ask: silence only
    with Endpointer(cfg, asr, judge=None) as ep:
        events = run(ep, np.concatenate([silence(300), speech_samples(FINISHED, voice=FIXED), silence(1500)]))
    waited = stop_after_speech_ms(events)
    assert cfg.vad.silence_duration_ms <= waited < cfg.vad.silence_duration_ms + 100
    # The reply is still prepared in the pause, as soon as the transcript is in.
    (likely,) = [e for e in events if isinstance(e, TurnLikely)]
    assert likely.p_complete is None and likely.silence_ms < cfg.vad.silence_duration_ms


class Broken(Exception):
    pass


class Failing:
    """Wraps a model: its `method` raises on the first `times` calls (None: on every call) for which
    `when()` holds, then works."""

    def __init__(self, model, method: str, times: int | None = 1):
        self.model, self.method, self.times, self.failed = model, method, times, 0
        self.when = lambda: True

    def __getattr__(self, name):
        real = getattr(self.model, name)
        if name != self.method:
            return real

        def call(*args, **kw):
            if (self.times is None or self.failed < self.times) and self.when():
                self.failed += 1
                raise Broken(f"{name} broke")
            return real(*args, **kw)

        return call


def test_a_failing_judge_is_reported_once_and_the_silence_rule_ends_the_turn(asr, judge):
    # It fails on every pause (a dip between words may fire one before the last word's).
    broken = Failing(judge, "p_complete", times=None)
    with Endpointer(EndpointConfig(semantic=SEMANTIC), asr, judge=broken) as ep:
        events = run(ep, np.concatenate([silence(300), speech_samples(FINISHED, voice=FIXED), silence(3000)]))
    errors = [e for e in events if isinstance(e, EndpointError)]
    assert broken.failed >= 1 and len(errors) == broken.failed  # each failure reported once
    assert all(e.code == "turn_detection_failed" and "broke" in e.message for e in errors)
    assert stop_after_speech_ms(events) >= SEMANTIC.max_wait_ms  # no verdict: the long silence decides
    turn = next(e for e in events if isinstance(e, TurnTranscript))
    assert turn.text.strip() and turn.speculative  # the speculative transcript itself was fine and kept


@pytest.mark.parametrize("semantic", [SEMANTIC, None], ids=["semantic_vad", "server_vad"])
def test_a_failing_speculative_transcription_is_reported_and_the_turn_transcribed_again(asr, judge, semantic):
    # Every speculative call fails (a dip between words may fire one before the last word's pause); the
    # one made once the turn has ended works.
    broken = Failing(asr, "transcribe", times=None)
    with Endpointer(EndpointConfig(semantic=semantic), broken, judge=judge) as ep:
        broken.when = lambda: ep.vad.state != ep.vad.QUIET
        events = run(ep, np.concatenate([silence(300), speech_samples(FINISHED, voice=FIXED), silence(3000)]))
    errors = [e for e in events if isinstance(e, EndpointError)]
    turns = [e for e in events if isinstance(e, TurnTranscript)]
    assert broken.failed >= 1 and len(turns) == 1, events
    assert turns[0].text.strip() and not turns[0].speculative  # transcribed again at the end of the turn
    assert len(errors) == broken.failed, errors  # each failure reported once
    assert all(e.code == "transcription_failed" for e in errors), errors


class DeafASR:
    calls = 0

    def transcribe(self, audio):
        self.calls += 1
        raise Broken("whisper broke")


def test_a_turn_whose_transcription_fails_is_an_error_not_an_exception():
    deaf = DeafASR()
    with Endpointer(EndpointConfig(), deaf) as ep:  # server_vad
        events = run(ep, np.concatenate([silence(300), speech_samples(FINISHED, voice=FIXED), silence(1500)]))
    # The speculative calls (the pause's, and any a dip between words fired), then the retry at the end
    # of the turn: each failure reported once.
    assert deaf.calls >= 2
    errors = [e for e in events if isinstance(e, EndpointError)]
    assert [e.code for e in errors] == ["transcription_failed"] * deaf.calls
    assert "whisper broke" in errors[0].message
    assert not any(isinstance(e, TurnTranscript) for e in events)
    assert sum(isinstance(e, SpeechStopped) for e in events) == 1  # the VAD's events still came


async def talk(s: Session, x: np.ndarray) -> list:
    """Speak x to the session in real time (100 ms chunks: a speculative reply runs in its pauses), then
    collect its frames up to the first ResponseDone; the session is closed."""
    got: list = []
    try:
        step = pcm.ms_to_samples(100, pcm.SAMPLE_RATE_ASR)
        for i in range(0, len(x), step):
            await s.push_audio(x[i : i + step], pcm.SAMPLE_RATE_ASR)
            await asyncio.sleep(0.1)

        async def until_done():
            while not isinstance(f := await s.next_frame(), F.ResponseDone):
                got.append(f)
            got.append(f)

        await asyncio.wait_for(until_done(), FRAME_TIMEOUT_S)
    finally:
        await s.close()
    return got


@pytest.mark.slow
async def test_the_speculated_reply_is_discarded_when_the_user_goes_on(engines, monkeypatch):
    # An eager judge (any pause counts as an end) with a long confirmation: the first half of the
    # request starts a held reply (prepare_reply_ms before the confirmation, inside the pause), the
    # second half throws it away, and one turn gets one reply. The pause is long enough for Whisper to
    # finish in it even on a loaded machine.
    confirm = MID_PAUSE_MS + 400
    assert confirm - EndpointConfig().prepare_reply_ms < MID_PAUSE_MS - 100
    monkeypatch.setitem(endpoint.EAGERNESS, "auto", SemanticConfig(confirm, 5000, 1e-6, confirm, 1e-6))
    s = Session(engines, session_config())
    first, second = speech_samples(UNFINISHED), speech_samples("two people tomorrow evening.")
    got = await talk(s, np.concatenate([silence(300), first, silence(MID_PAUSE_MS), second, silence(5500)]))
    heard = [f.text for f in got if isinstance(f, F.UserTranscript)]
    assert len(heard) == 1 and "people" in heard[0].lower(), heard  # one turn: the whole request
    assert s.speculation["discarded"] >= 1, s.speculation
    started = [f for f in got if isinstance(f, F.ResponseStarted)]
    assert len(started) == 1 and got.index(started[0]) > got.index(
        next(f for f in got if isinstance(f, F.UserTranscript))
    )  # nothing of the discarded reply reached the client
    assert got[-1].status == "completed"
    assert 0.0 <= got[-1].p_complete <= 1.0  # the judge's verdict on the turn, for dlm.turn_metrics


@pytest.mark.slow
async def test_server_vad_answers_with_the_reply_prepared_in_the_pause(engines):
    # Silence only still speculates: the reply starts in the pause and is released when the silence
    # ends the turn, so the answer does not wait for the LM and piper after the endpoint. (1.2 s of
    # silence: Whisper finishes well inside it even on a loaded machine.)
    vad = VadConfig(silence_duration_ms=1200)
    s = Session(engines, session_config(eagerness=None, turn_detection=vad))
    question = VOICE_PAIRS[0][0]  # one the tiny test model memorised: its reply has words to speak
    got = await talk(s, np.concatenate([silence(300), speech_samples(question), silence(2000)]))
    assert s.speculation["started"] == s.speculation["used"] == 1, s.speculation
    assert sum(isinstance(f, F.UserTranscript) for f in got) == 1
    assert got[-1].status == "completed" and any(isinstance(f, F.AudioOut) for f in got)
    assert got[-1].p_complete is None  # silence alone ended it: no judge


async def test_realtime_semantic_vad_through_the_openai_sdk(server):
    openai = pytest.importorskip("openai")
    base = f"http://127.0.0.1:{server.port}/v1"
    async with openai.AsyncOpenAI(api_key="x", base_url=base).realtime.connect(model="dlm") as conn:
        created = await asyncio.wait_for(conn.recv(), 30)
        td = created.session.audio.input.turn_detection
        assert td.type == "semantic_vad" and td.eagerness == "auto"  # the server's default
        for eagerness in ("low", "high"):
            await conn.session.update(
                session={
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}},
                }
            )
            updated = await asyncio.wait_for(conn.recv(), 30)
            assert updated.type == "session.updated"
            assert updated.session.audio.input.turn_detection.eagerness == eagerness
        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}},
            }
        )
        td = (await asyncio.wait_for(conn.recv(), 30)).session.audio.input.turn_detection
        assert td.type == "server_vad" and td.silence_duration_ms == 700  # server_vad keeps its meaning
        bad = {"type": "semantic_vad", "eagerness": "whenever"}
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": bad}}})
        err = await asyncio.wait_for(conn.recv(), 30)
        assert err.type == "error" and err.error.param == "session.audio.input.turn_detection.eagerness"
