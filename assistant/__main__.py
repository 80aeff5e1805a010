"""Command line: `python -m assistant {serve,lm-server,mic,chat,transcribe,say}` (or `dlm-voice`).

Every subcommand loads only the models it needs, once. A missing model prints one line saying what to
install or pass and exits with EXIT_MISSING_MODEL; a flag value the configuration refuses prints why and
exits with EXIT_USAGE; neither prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time

from dlm_core.presets import KNOB_PRESETS

EXIT_ERROR = 1  # anything else that went wrong (a port in use, an unreadable file)
EXIT_USAGE = 2  # a bad flag value, as argparse exits for a bad flag
EXIT_MISSING_MODEL = 2  # a model that is not installed or not found (the same "fix the command" status)
EXIT_DEVICE = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it


class UsageError(Exception):
    """A flag value that argparse could not check and the configuration refused."""


@contextlib.contextmanager
def flag_values():
    """Configuration built from flags: its ValueError is the user's to fix, not a bug."""
    try:
        yield
    except ValueError as e:
        raise UsageError(str(e)) from e


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument(
        "--model", help="diffusion LM: checkpoint folder or hub id (env DLM_MODEL; default: bundled)"
    )
    g.add_argument(
        "--asr-model", help="CTranslate2 Whisper folder or name (env DLM_ASR_MODEL; default: bundled tiny.en)"
    )
    g.add_argument("--voice", help="piper .onnx voice (env DLM_TTS_VOICE; default: bundled joe voice)")
    g.add_argument(
        "--preset",
        choices=KNOB_PRESETS,
        default=None,
        help="diffusion speed/quality preset; auto: the model's own decoding (env DLM_PRESET; default: auto)",
    )
    g.add_argument("--device", default="cpu", help="torch device for the LM (cpu, cuda)")
    g.add_argument(
        "--instructions", default=None, help="system prompt ('' for none; default: a brief-answers prompt)"
    )
    g.add_argument(
        "--no-builtin-tools",
        action="store_true",
        help="do not offer the built-in tools (time and date, arithmetic, units, timers)",
    )
    g = p.add_argument_group("remote LM (replies from an OpenAI-compatible server instead of --model)")
    g.add_argument("--lm-url", metavar="URL", help="chat-completions server, e.g. http://127.0.0.1:8766/v1")
    g.add_argument("--lm-api-key", metavar="KEY", help="its API key (env DLM_LM_API_KEY)")
    g.add_argument("--lm-model", metavar="NAME", help="the served model to use (default: the first listed)")


def _add_listen_flags(p: argparse.ArgumentParser, port: int) -> None:
    """Where a server listens and who may call it: the same rule for `serve` and `lm-server`."""
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help=f"port (default {port}; 0 picks a free one)")
    p.add_argument(
        "--api-key",
        default=None,
        help="key clients must send (Authorization: Bearer KEY); required beyond loopback (env DLM_API_KEY)",
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve beyond loopback without a key (anyone may use it)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="a web origin (https://host[:port]) whose pages may call it, besides our page (repeatable)",
    )


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    _add_listen_flags(p, port=8765)  # the help names the defaults without importing the servers
    p.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        metavar="N",
        help="sessions served at once; more are refused with an error event (default 8)",
    )
    p.add_argument(
        "--max-sessions-per-client",
        type=int,
        default=None,
        metavar="N",
        help="sessions one client address may hold at once (default 4, or --max-sessions if smaller)",
    )


def _add_lm_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="diffusion LM: checkpoint folder or hub id (env DLM_MODEL; default: bundled)"
    )
    p.add_argument("--device", default="cpu", help="torch device for the LM (cpu, cuda)")
    p.add_argument(
        "--preset",
        choices=KNOB_PRESETS,
        default=None,
        help="decoding of requests that name no preset (env DLM_PRESET; default: auto)",
    )
    p.add_argument("--name", help="the model's name on the wire (default: --model as given, or dlm-voice)")
    _add_listen_flags(p, port=8766)
    p.add_argument(
        "--max-generations", type=int, default=None, metavar="N", help="replies made at once (default 32)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlm-voice", description="A voice assistant whose LM is a masked-diffusion LM."
    )
    common = argparse.ArgumentParser(add_help=False)
    _add_model_flags(common)
    common.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "serve", parents=[common], help="browser page at / and the Realtime API at /v1/realtime"
    )
    _add_serve_flags(p)

    p = sub.add_parser("lm-server", help="the diffusion LM alone, as OpenAI chat completions at /v1")
    _add_lm_server_flags(p)

    p = sub.add_parser("mic", parents=[common], help="talk through the local microphone and speakers")
    p.add_argument("--input-device", help="input device index or name substring (see --list-devices)")
    p.add_argument("--output-device", help="output device index or name substring")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument(
        "--headphones",
        action="store_true",
        help="full duplex with barge-in (open speakers would make the assistant hear itself)",
    )
    p.add_argument("--max-turns", type=int, default=None, help="exit after this many replies")

    p = sub.add_parser("chat", parents=[common], help="text chat: one reply per line")
    p.add_argument(
        "--text", action="append", help="a message to answer on its own (repeatable); none: read stdin"
    )

    p = sub.add_parser(
        "transcribe", parents=[common], help="transcribe audio files with the voice loop's ASR path"
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per line: file, text, ms, turns")

    p = sub.add_parser("say", parents=[common], help="speak TEXT with the voice loop's TTS path")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("-o", "--output", help="write a WAV file instead of playing")
    return parser


def _models(args):
    from assistant.config import ModelsConfig

    kw = {"model": args.model, "asr_model": args.asr_model, "voice": args.voice, "device": args.device}
    kw.update(lm_url=args.lm_url, lm_model=args.lm_model)
    if args.preset:
        kw["preset"] = args.preset
    if args.lm_api_key:
        kw["lm_api_key"] = args.lm_api_key
    with flag_values():
        return ModelsConfig(**kw)


def _session_cfg(models, args=None, **kw):
    from assistant.config import DlmKnobs, SessionConfig

    if args is not None and args.instructions is not None:
        kw["instructions"] = args.instructions
    if args is not None and args.no_builtin_tools:
        kw["builtin_tools"] = False
    with flag_values():
        return SessionConfig(dlm=DlmKnobs(preset=models.preset), **kw)


# ------------------------------------------------------------------------------------------ commands


def server_cfg(args):
    """The `serve` flags as a ServerConfig (UsageError for a value it refuses)."""
    from assistant.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig

    limits = {"max_sessions": args.max_sessions, "max_sessions_per_client": args.max_sessions_per_client}
    with flag_values():
        return ServerConfig(
            host=args.host or DEFAULT_HOST,
            port=DEFAULT_PORT if args.port is None else args.port,
            insecure_no_auth=args.insecure_no_auth,
            allow_origins=tuple(args.allow_origin or ()),
            **({"api_key": args.api_key} if args.api_key else {}),
            **{k: v for k, v in limits.items() if v is not None},
        )


def cmd_serve(args) -> int:
    from assistant.engines import Engines
    from assistant.server import AssistantServer

    models = _models(args)
    cfg = server_cfg(args)
    engines = Engines.load(models)

    async def main():
        server = await AssistantServer(engines, cfg, _session_cfg(models, args)).start()
        key_hint = "#key=YOUR_KEY" if cfg.needs_key else ""
        print(
            f"serving on {server.url}{key_hint}  (Realtime API: ws://{cfg.host}:{server.port}/v1/realtime)",
            flush=True,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):  # a service manager stops us with SIGTERM
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()  # closes every session with 1001 (going away)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        engines.close()
    return 0


def cmd_lm_server(args) -> int:
    from assistant.config import DEFAULT_HOST, ModelsConfig, ServerConfig
    from assistant.lm_server import DEFAULT_LM_PORT, DEFAULT_MODEL_NAME, LmServer, LmServerConfig
    from dlm_core.engine import DlmEngine

    with flag_values():
        models = ModelsConfig(
            model=args.model, device=args.device, **({"preset": args.preset} if args.preset else {})
        )
        net = ServerConfig(
            host=args.host or DEFAULT_HOST,
            port=DEFAULT_LM_PORT if args.port is None else args.port,
            insecure_no_auth=args.insecure_no_auth,
            allow_origins=tuple(args.allow_origin or ()),
            **({"api_key": args.api_key} if args.api_key else {}),
        )
        limit = {} if args.max_generations is None else {"max_generations": args.max_generations}
        cfg = LmServerConfig(net, args.name or args.model or DEFAULT_MODEL_NAME, models.preset, **limit)
    engine = DlmEngine.load(models.model, device=models.device)

    async def main():
        server = await LmServer(engine, cfg).start()
        print(f"serving {cfg.model_name} on {server.url}  (OpenAI chat completions)", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()  # open replies are closed, so their generations stop

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()
    return 0


def cmd_chat(args) -> int:
    from assistant.engines import Engines
    from assistant.text_chat import chat

    models = _models(args)
    engines = Engines.load(models, asr=False, tts=False)
    try:
        return asyncio.run(chat(engines, _session_cfg(models, args), args.text))
    except KeyboardInterrupt:
        return 0
    finally:
        engines.close()


def cmd_transcribe(args) -> int:
    from assistant.engines import Engines
    from turn_taking.endpoint import EndpointConfig, Endpointer, transcribe_file

    engines = Engines.load(_models(args), lm=False, tts=False, judge=False)
    status = 0
    with Endpointer(EndpointConfig(), engines.asr) as ep:
        for f in args.files:
            t0 = time.perf_counter()
            try:
                turns = transcribe_file(f, ep)
            except (OSError, ValueError) as e:
                print(f"{f}: cannot read audio: {e}", file=sys.stderr)
                status = 1
                continue
            ms = round((time.perf_counter() - t0) * 1000.0, 1)
            text = " ".join(t.text for t in turns if t.text).strip()
            if args.json:
                print(
                    json.dumps(
                        {
                            "file": f,
                            "text": text,
                            "ms": ms,
                            "turns": [
                                {
                                    "text": t.text,
                                    "start_ms": t.start_ms,
                                    "end_ms": t.end_ms,
                                    "asr_ms": round(t.asr_ms, 1),
                                }
                                for t in turns
                            ],
                        }
                    ),
                    flush=True,
                )
            else:
                print(f"{f}\t{text}", flush=True)
    return status


def cmd_say(args) -> int:
    import numpy as np

    from assistant.engines import Engines
    from audio import pcm

    engines = Engines.load(_models(args), lm=False, asr=False)
    tts = engines.tts
    chunks = [c.samples for c in tts.synthesize(args.text)]
    x = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if args.output:
        pcm.write_wav(args.output, x, tts.sample_rate)
        print(f"wrote {args.output} ({len(x) / tts.sample_rate:.2f} s)", file=sys.stderr)
    else:
        from audio.devices import play

        play(x, tts.sample_rate)
    return 0


def cmd_mic(args) -> int:
    from assistant.mic import run_mic

    models = _models(args)
    return run_mic(args, models, _session_cfg(models, args, interrupt_response=args.headphones))


COMMANDS = {
    "serve": cmd_serve,
    "lm-server": cmd_lm_server,
    "chat": cmd_chat,
    "transcribe": cmd_transcribe,
    "say": cmd_say,
    "mic": cmd_mic,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return COMMANDS[args.command](args)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_MISSING_MODEL
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # e.g. the port is taken
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        from audio.devices import AudioDeviceError

        if isinstance(e, AudioDeviceError):
            print(f"error: {e}", file=sys.stderr)
            return EXIT_DEVICE
        raise


if __name__ == "__main__":
    sys.exit(main())
