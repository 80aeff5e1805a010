"""Speech in and out, our path side by side with plain faster-whisper / piper calls in the same run.

    python -m bench.audio --json [--n 8] [--live 3] [--voices piper,espeak]

Speech is made offline (testkit/speech.py: the bundled piper voice and espeak-ng), `--n` sentences per voice.
ASR, per voice:
  ours   the `transcribe` CLI path: the endpointer (VAD + speculative transcription) over a WAV with the
         sentence between silences (0.5 s before, 0.8 s after), fed in 100 ms chunks as fast as possible;
  plain  `WhisperModel.transcribe(file, beam_size=1, language="en")` on the sentence's own trimmed WAV (its
         README call, same loaded model). The two alternate per sentence, so load drift hits both alike.
  ms/utt = wall time of the Whisper call per sentence, RTF = that time / speech duration, WER = word edits /
  reference words after normalize_text (case, punctuation, digits, contractions).
Live endpointing (`--live` sentences, piper voice, fed in real time): `wait` = ms from the endpoint decision
(silence_duration_ms after the speech ended) to the transcript, speculative vs transcribing after the
endpoint.
TTS (the joe voice, replies of 1-3 sentences): first audio = ms from the call to the first chunk, RTF = synth
time / audio duration; ours delivers 24 kHz (soxr) and starts with the first clause, plain is
`PiperVoice.synthesize(text)` at 22.05 kHz.
Prints a human table, then ONE JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from audio import pcm
from testkit.speech import (
    MORE_UTTERANCES,
    UTTERANCES,
    corpus_wer,
    load_synthesizer,
    load_transcriber,
    make_conversation_wav,
    make_speech,
)
from turn_taking.endpoint import EndpointConfig, Endpointer, TurnTranscript, transcribe_file

GAP_S = 0.8  # silence between sentences in the conversation WAV
LIVE_CHUNK_MS = 20  # real-time feeding step for the live run
REPLIES = [
    "Sure, I can help with that.",
    "The capital of Australia is Canberra, not Sydney as many people think,"
    " and it was chosen as a compromise.",
    "Paris will be sunny today. Expect a high of twenty degrees.",
    "Here is a short story. Once upon a time, a small dragon lived in a cave by the sea. It loved to read.",
    "Okay, your timer is set for ten minutes.",
]


def mean(xs):
    return round(statistics.fmean(xs), 1) if xs else None


def bench_asr(asr, voice: str, utts: list[str]) -> dict:
    """Paired per sentence (order alternating), so that load drift on a shared machine hits both sides
    alike."""
    ours_ms, ours_wall, ours_txt, reused, plain_ms, plain_txt, speech_ms = [], [], [], 0, [], [], []
    with Endpointer(EndpointConfig(), asr) as ep:
        for i, u in enumerate(utts):
            conv = make_conversation_wav([0.5, u, GAP_S], voice=voice)
            speech_ms.append(sum(s.end_ms - s.start_ms for s in conv.segments))
            plain_path = make_speech(u, voice=voice)

            def ours(conv=conv):
                t0 = time.perf_counter()
                turns = transcribe_file(conv.path, ep, chunk_ms=100)
                ours_wall.append((time.perf_counter() - t0) * 1000.0)
                ours_ms.append(sum(t.asr_ms for t in turns))
                ours_txt.append(" ".join(t.text for t in turns))
                return sum(t.speculative for t in turns)

            def plain(plain_path=plain_path):
                t0 = time.perf_counter()
                segments, _ = asr.model.transcribe(str(plain_path), beam_size=1, language="en")
                plain_txt.append(" ".join(s.text.strip() for s in segments))
                plain_ms.append((time.perf_counter() - t0) * 1000.0)

            if i % 2:
                plain()
                reused += ours()
            else:
                reused += ours()
                plain()
    return {
        "ours": {
            "ms_per_utt": mean(ours_ms),
            "rtf": round(sum(ours_ms) / sum(speech_ms), 3),
            "wer": round(corpus_wer(list(zip(utts, ours_txt))), 4),
            "wall_ms_per_file": mean(ours_wall),  # VAD + endpointing + Whisper for the whole WAV
            "speculative_reused": reused,
        },
        "plain": {
            "ms_per_utt": mean(plain_ms),
            "rtf": round(sum(plain_ms) / sum(speech_ms), 3),
            "wer": round(corpus_wer(list(zip(utts, plain_txt))), 4),
        },
        "utterances": len(utts),
        "speech_s": round(sum(speech_ms) / 1000, 1),
    }


def bench_live(asr, utts: list[str]) -> dict:
    out = {}
    for name, speculative in (("speculative", True), ("after_endpoint", False)):
        waits, asr_ms = [], []
        for u in utts:
            x = make_conversation_wav([0.3, u, GAP_S]).samples
            step = pcm.ms_to_samples(LIVE_CHUNK_MS, 16000)
            with Endpointer(EndpointConfig(speculative=speculative), asr) as ep:
                t0 = time.perf_counter()
                for i in range(0, len(x), step):
                    time.sleep(max(0.0, t0 + i / 16000 - time.perf_counter()))
                    for e in ep.feed(x[i : i + step]):
                        if isinstance(e, TurnTranscript):
                            waits.append(e.wait_ms)
                            asr_ms.append(e.asr_ms)
        out[name] = {"wait_ms": mean(waits), "asr_ms": mean(asr_ms), "turns": len(waits)}
    return out


def bench_tts(synth) -> dict:
    voice = synth.voice
    ours_first, ours_syn, ours_audio = [], 0.0, 0.0
    plain_first, plain_syn, plain_audio = [], 0.0, 0.0
    for text in REPLIES:
        t0 = time.perf_counter()
        first = None
        for ch in synth.synthesize(text, rate=pcm.SAMPLE_RATE_API):
            first = first if first is not None else (time.perf_counter() - t0) * 1000.0
            ours_audio += ch.duration_ms
        ours_syn += (time.perf_counter() - t0) * 1000.0
        ours_first.append(first)

        t0 = time.perf_counter()
        first = None
        for ch in voice.synthesize(text):
            first = first if first is not None else (time.perf_counter() - t0) * 1000.0
            plain_audio += pcm.samples_to_ms(len(ch.audio_float_array), ch.sample_rate)
        plain_syn += (time.perf_counter() - t0) * 1000.0
        plain_first.append(first)
    return {
        "ours": {
            "first_audio_ms": mean(ours_first),
            "rtf": round(ours_syn / ours_audio, 4),
            "rate": pcm.SAMPLE_RATE_API,
        },
        "plain": {
            "first_audio_ms": mean(plain_first),
            "rtf": round(plain_syn / plain_audio, 4),
            "rate": synth.sample_rate,
        },
        "replies": len(REPLIES),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="end with one JSON line (always printed last)")
    ap.add_argument(
        "--n", type=int, default=8, help=f"sentences per voice (max {len(UTTERANCES) + len(MORE_UTTERANCES)})"
    )
    ap.add_argument(
        "--live", type=int, default=3, help="sentences for the real-time endpointing run (0: skip)"
    )
    ap.add_argument("--voices", default="piper,espeak")
    args = ap.parse_args(argv)
    utts = (UTTERANCES + MORE_UTTERANCES)[: args.n]

    t0 = time.perf_counter()
    asr, synth = load_transcriber(), load_synthesizer()
    load_s = time.perf_counter() - t0
    asr.transcribe(np.zeros(16000, np.float32))  # warm-up: first CTranslate2 call allocates
    next(synth.synthesize("Warm up."))

    result: dict = {
        "load_s": round(load_s, 2),
        "asr": {},
        "machine": {"cpus": os.cpu_count(), "load1": round(os.getloadavg()[0], 1)},
    }
    for voice in args.voices.split(","):
        result["asr"][voice] = bench_asr(asr, voice, utts)
    result["tts"] = bench_tts(synth)
    if args.live:
        result["live_endpointing"] = bench_live(asr, utts[: args.live])
    result["machine"]["load1_end"] = round(os.getloadavg()[0], 1)

    print(
        f"audio benchmark: {len(utts)} sentences/voice, {os.cpu_count()} CPUs,"
        f" load {result['machine']['load1']}"
        f"->{result['machine']['load1_end']}, models loaded in {load_s:.1f} s"
    )
    print(f"{'ASR':<22}{'ms/utt':>10}{'RTF':>8}{'WER':>8}")
    for voice, r in result["asr"].items():
        for who in ("ours", "plain"):
            x = r[who]
            wer = "n/a" if x["wer"] is None else f"{100 * x['wer']:.1f}%"
            print(f"{voice + ' ' + who:<22}{x['ms_per_utt']:>10}{x['rtf']:>8}{wer:>8}")
    print(f"{'TTS':<22}{'first ms':>10}{'RTF':>8}{'Hz':>8}")
    for who in ("ours", "plain"):
        x = result["tts"][who]
        print(f"{who:<22}{x['first_audio_ms']:>10}{x['rtf']:>8}{x['rate']:>8}")
    if args.live:
        print(f"{'live endpointing':<22}{'wait ms':>10}{'asr ms':>8}")
        for who, x in result["live_endpointing"].items():
            print(f"{who:<22}{x['wait_ms']:>10}{x['asr_ms']:>8}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
