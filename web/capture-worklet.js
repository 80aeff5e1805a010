// Microphone capture processor: mono mix -> 24 kHz -> int16 chunks posted to the main thread.
//
// Each chunk carries the peak RMS level seen while it was filled, so the page's level meter moves at the
// chunk rate without a second analyser node. While muted the chunks keep flowing as silence: the server's
// VAD then sees the speech end instead of a stalled stream.

import { Resampler } from "./resampler.js";

const INT16_MAX = 32767;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, chunkMs } = options.processorOptions;
    this.resampler = new Resampler(sampleRate, targetRate);
    this.chunkSize = Math.round((targetRate * chunkMs) / 1000); // samples per chunk
    this.chunk = new Int16Array(this.chunkSize);
    this.fill = 0;
    this.level = 0;
    this.muted = false;
    this.port.onmessage = (e) => {
      if (e.data.type === "mute") this.muted = Boolean(e.data.muted);
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // source not connected yet
    const frames = channels[0].length;
    const mono = new Float32Array(frames);
    for (const ch of channels) for (let i = 0; i < frames; i++) mono[i] += ch[i] / channels.length;
    if (this.muted) mono.fill(0);
    let energy = 0;
    for (let i = 0; i < frames; i++) energy += mono[i] * mono[i];
    this.level = Math.max(this.level, Math.sqrt(energy / frames));

    const out = this.resampler.process(mono);
    for (let i = 0; i < out.length; i++) {
      const s = Math.max(-1, Math.min(1, out[i]));
      this.chunk[this.fill++] = Math.round(s * INT16_MAX);
      if (this.fill === this.chunkSize) {
        const pcm = this.chunk.buffer;
        this.port.postMessage({ type: "chunk", pcm, level: this.level }, [pcm]);
        this.chunk = new Int16Array(this.chunkSize); // the old buffer now belongs to the main thread
        this.fill = 0;
        this.level = 0;
      }
    }
    return true;
  }
}

registerProcessor("dlm-capture", CaptureProcessor);
