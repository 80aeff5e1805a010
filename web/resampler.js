// Streaming band-limited resampler (windowed sinc), shared by the capture and playback worklets.
//
// Capture goes from the microphone's context rate (44.1 or 48 kHz) down to the 24 kHz the Realtime API
// wants; playback goes from 24 kHz up to the context rate. A plain linear interpolator would alias the
// top octave into the speech band on the way down, so both directions use the same low-pass kernel.

const HALF_TAPS = 10; // kernel half-width in source samples at unity ratio (quality vs. CPU)
const TABLE_STEPS = 128; // kernel table resolution per source sample (linear interpolation between)
const PASSBAND = 0.92; // cut-off as a fraction of the lower Nyquist, leaves room for the transition band

function buildKernel(half, cutoff) {
  // Blackman-windowed sinc sampled at 1/TABLE_STEPS, indexed by |x| * TABLE_STEPS for x in [0, half].
  const n = half * TABLE_STEPS + 2;
  const table = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = i / TABLE_STEPS;
    const w = x >= half ? 0 : 0.42 + 0.5 * Math.cos((Math.PI * x) / half) + 0.08 * Math.cos((2 * Math.PI * x) / half);
    const s = x === 0 ? 1 : Math.sin(Math.PI * cutoff * x) / (Math.PI * cutoff * x);
    table[i] = cutoff * s * w;
  }
  return table;
}

export class Resampler {
  constructor(srcRate, dstRate) {
    if (!(srcRate > 0 && dstRate > 0)) throw new RangeError(`bad rates ${srcRate} -> ${dstRate}`);
    this.step = srcRate / dstRate; // source samples advanced per output sample
    const cutoff = Math.min(1, dstRate / srcRate) * PASSBAND; // relative to the source Nyquist
    this.half = Math.ceil(HALF_TAPS / cutoff); // wider kernel when down-sampling keeps the same sharpness
    this.scale = TABLE_STEPS * cutoff; // maps a source distance to a table index (kernel stretched by 1/cutoff)
    this.kernel = buildKernel(Math.ceil(HALF_TAPS), 1); // unity sinc; stretched through `scale`
    this.gain = cutoff;
    this.buf = new Float32Array(this.half); // leading zeros = kernel history before the first sample
    this.pos = this.half; // fractional position of the next output sample inside `buf`
  }

  reset() {
    this.buf = new Float32Array(this.half);
    this.pos = this.half;
  }

  // input: Float32Array at srcRate -> Float32Array at dstRate (may be empty while the kernel fills up).
  process(input) {
    const buf = new Float32Array(this.buf.length + input.length);
    buf.set(this.buf, 0);
    buf.set(input, this.buf.length);
    const limit = buf.length - this.half; // need `half` samples right of the output position
    const count = Math.max(0, Math.ceil((limit - this.pos) / this.step));
    const out = new Float32Array(count);
    const { kernel, scale, half, gain } = this;
    const maxIndex = kernel.length - 2;
    let pos = this.pos;
    for (let o = 0; o < count; o++, pos += this.step) {
      const center = Math.floor(pos);
      let acc = 0;
      for (let k = center - half + 1; k <= center + half; k++) {
        const t = Math.abs(pos - k) * scale;
        if (t >= maxIndex) continue;
        const i = t | 0;
        const f = t - i;
        acc += buf[k] * (kernel[i] + (kernel[i + 1] - kernel[i]) * f);
      }
      out[o] = acc * gain;
    }
    // Keep only what the next call still needs: `half` samples left of the next position.
    const keepFrom = Math.max(0, Math.floor(pos) - this.half);
    this.buf = buf.slice(keepFrom);
    this.pos = pos - keepFrom;
    return out;
  }
}
