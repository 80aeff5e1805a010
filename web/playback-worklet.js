// Reply playback processor: a queue of 24 kHz chunks, resampled to the context rate on arrival.
//
// Playback starts with the first chunk (no pre-buffer: latency matters more than a rare underrun) and a
// "flush" message empties the queue within one render quantum, which is what barge-in needs. The processor
// reports what it actually rendered, so the page can tell the server how much of a reply was heard.

import { Resampler } from "./resampler.js";

const REPORT_EVERY = 8; // render quanta between progress reports (~20 ms at 48 kHz)

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.resampler = new Resampler(options.processorOptions.sourceRate, sampleRate);
    this.queue = []; // Float32Array chunks at the context rate
    this.head = 0; // read offset into queue[0]
    this.queued = 0; // frames waiting
    this.framesPlayed = 0; // frames of reply audio rendered since the node started
    this.playing = false;
    this.quanta = 0;
    this.level = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === "push") {
      const frames = this.resampler.process(msg.samples);
      if (frames.length) {
        this.queue.push(frames);
        this.queued += frames.length;
      }
    } else if (msg.type === "flush") {
      const dropped = this.queued;
      this.queue = [];
      this.head = 0;
      this.queued = 0;
      this.resampler.reset();
      const wasPlaying = this.playing;
      this.playing = false;
      this.port.postMessage({ type: "flushed", id: msg.id, dropped, framesPlayed: this.framesPlayed, wasPlaying });
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const left = out[0];
    let written = 0;
    let energy = 0;
    while (written < left.length && this.queue.length) {
      const chunk = this.queue[0];
      const n = Math.min(left.length - written, chunk.length - this.head);
      for (let i = 0; i < n; i++) {
        const s = chunk[this.head + i];
        left[written + i] = s;
        energy += s * s;
      }
      written += n;
      this.head += n;
      if (this.head === chunk.length) {
        this.queue.shift();
        this.head = 0;
      }
    }
    for (let c = 1; c < out.length; c++) out[c].set(left);
    this.queued -= written;
    this.framesPlayed += written;
    if (written) this.level = Math.max(this.level, Math.sqrt(energy / written));

    if (written && !this.playing) {
      this.playing = true;
      this.port.postMessage({ type: "started", framesPlayed: this.framesPlayed });
    } else if (!written && this.playing) {
      this.playing = false;
      this.port.postMessage({ type: "drained", framesPlayed: this.framesPlayed });
    }
    if (++this.quanta % REPORT_EVERY === 0 && (written || this.level)) {
      this.port.postMessage({ type: "progress", framesPlayed: this.framesPlayed, queued: this.queued, level: this.level });
      this.level = 0;
    }
    return true;
  }
}

registerProcessor("dlm-playback", PlaybackProcessor);
