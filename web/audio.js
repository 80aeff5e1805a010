// Main-thread side of audio: one AudioContext, the microphone capture node and the reply player.

export const API_RATE = 24000; // Realtime `pcm16` sample rate
const CHUNK_MS = 20; // capture chunk length sent per input_audio_buffer.append

let contextPromise = null;

// The context is created on the first user gesture (Start, Send) so autoplay rules allow it to run.
export function audioContext() {
  if (!contextPromise) {
    contextPromise = (async () => {
      const ctx = new AudioContext({ latencyHint: "interactive" });
      await ctx.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
      await ctx.audioWorklet.addModule(new URL("./playback-worklet.js", import.meta.url));
      return ctx;
    })();
  }
  return contextPromise.then(async (ctx) => {
    if (ctx.state === "suspended") await ctx.resume();
    return ctx;
  });
}

// Microphone -> 24 kHz int16 chunks. `onChunk(ArrayBuffer pcm, level)` is called every CHUNK_MS.
export class Capture {
  constructor(onChunk) {
    this.onChunk = onChunk;
    this.stream = null;
    this.node = null;
    this.source = null;
    this.muted = false;
  }

  get running() {
    return this.stream !== null;
  }

  // Throws the getUserMedia error (NotAllowedError, NotFoundError, ...) for the page to explain.
  async start(processing) {
    if (!navigator.mediaDevices?.getUserMedia) {
      const err = new Error("This page needs a secure context (https or localhost) to use the microphone.");
      err.name = "InsecureContextError";
      throw err;
    }
    const ctx = await audioContext();
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: processing.echoCancellation,
        noiseSuppression: processing.noiseSuppression,
        autoGainControl: processing.autoGainControl,
      },
    });
    this.stop();
    this.stream = stream;
    this.source = ctx.createMediaStreamSource(stream);
    this.node = new AudioWorkletNode(ctx, "dlm-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { targetRate: API_RATE, chunkMs: CHUNK_MS },
    });
    this.node.port.onmessage = (e) => {
      if (e.data.type === "chunk") this.onChunk(e.data.pcm, e.data.level);
    };
    this.node.port.postMessage({ type: "mute", muted: this.muted });
    this.source.connect(this.node);
    // The node writes silence; connecting it keeps the graph pulling it in every browser.
    this.node.connect(ctx.destination);
    stream.getAudioTracks()[0]?.addEventListener("ended", () => this.onEnded?.());
  }

  setMuted(muted) {
    this.muted = muted;
    this.node?.port.postMessage({ type: "mute", muted });
  }

  stop() {
    this.source?.disconnect();
    this.node?.disconnect();
    if (this.node) this.node.port.onmessage = null;
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = this.node = this.source = null;
  }
}

// Reply audio queue. Keeps millisecond book-keeping so barge-in can report how much was heard.
export class Player extends EventTarget {
  constructor() {
    super();
    this.node = null;
    this.ready = null;
    this.rate = 0; // context sample rate
    this.framesPlayed = 0; // rendered reply frames (context rate), as last reported by the worklet
    this.pushedMs = 0; // ms of audio handed to the worklet on the same clock as playedMs
    this.flushes = 0; // flushes that cut audible audio (barge-in)
    this.framesDropped = 0;
    this.playing = false;
    this.level = 0;
    this.pendingFlush = new Map();
    this.flushSeq = 0;
  }

  // Seconds between rendering and the speakers (undefined where the browser does not say).
  get outputLatency() {
    return this.node ? this.node.context.outputLatency ?? this.node.context.baseLatency : undefined;
  }

  get playedMs() {
    return this.rate ? (this.framesPlayed / this.rate) * 1000 : 0;
  }

  // One shared promise, so pushes chained on it keep their order while the context starts.
  ensure() {
    this.ready ??= this.create();
    return this.ready;
  }

  async create() {
    const ctx = await audioContext();
    this.rate = ctx.sampleRate;
    this.node = new AudioWorkletNode(ctx, "dlm-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [2],
      processorOptions: { sourceRate: API_RATE },
    });
    this.node.port.onmessage = (e) => this.onWorklet(e.data);
    this.node.connect(ctx.destination);
  }

  onWorklet(msg) {
    if (msg.framesPlayed !== undefined) this.framesPlayed = msg.framesPlayed;
    if (msg.type === "started") {
      this.playing = true;
      this.dispatchEvent(new Event("started"));
    } else if (msg.type === "drained") {
      this.playing = false;
      this.level = 0;
      this.dispatchEvent(new Event("drained"));
    } else if (msg.type === "progress") {
      this.level = msg.level;
      this.dispatchEvent(new Event("progress"));
    } else if (msg.type === "flushed") {
      this.playing = false;
      this.level = 0;
      this.pushedMs = this.playedMs;
      if (msg.dropped > 0) {
        this.flushes += 1;
        this.framesDropped += msg.dropped;
      }
      this.pendingFlush.get(msg.id)?.({ playedMs: this.playedMs, droppedMs: (msg.dropped / this.rate) * 1000 });
      this.pendingFlush.delete(msg.id);
    }
  }

  // samples: Float32Array at API_RATE. Returns the ms offset (player clock) where this chunk starts.
  push(samples) {
    const startMs = Math.max(this.pushedMs, this.playedMs);
    this.pushedMs = startMs + (samples.length / API_RATE) * 1000;
    this.node.port.postMessage({ type: "push", samples }, [samples.buffer]);
    return startMs;
  }

  // Drop everything queued now. Resolves with {playedMs, droppedMs} once the worklet has done it.
  flush() {
    if (!this.node) return Promise.resolve({ playedMs: 0, droppedMs: 0 });
    const id = ++this.flushSeq;
    return new Promise((resolve) => {
      this.pendingFlush.set(id, resolve);
      this.node.port.postMessage({ type: "flush", id });
    });
  }
}

// base64 pcm16 (little-endian) -> Float32Array in [-1, 1)
export function decodePcm16(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const view = new DataView(bytes.buffer);
  const out = new Float32Array(bytes.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

// ArrayBuffer of int16 little-endian -> base64
export function encodePcm16(buffer) {
  const bytes = new Uint8Array(buffer);
  let bin = "";
  const STRIDE = 0x8000; // keep String.fromCharCode's argument list small
  for (let i = 0; i < bytes.length; i += STRIDE) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + STRIDE));
  return btoa(bin);
}
