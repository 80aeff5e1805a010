// Per-turn latency chart: one stacked column per turn (SVG, no library).

// The server's dlm.turn_metrics (assistant/pipeline.py TurnClock) gives spans in ms: endpointing (speech
// end -> turn decided), asr (decided -> transcript), first_text and first_audio (both from the response
// start), voice_to_voice (speech end -> first audio). Stacked stages are therefore the first three plus
// first_audio - first_text for the voice; whatever the total has beyond them shows as "other".
export const STAGES = [
  { key: "endpointing", label: "Endpointing", color: "var(--c-endpoint)", ms: (l) => l.endpointing },
  { key: "asr", label: "Speech recognition", color: "var(--c-asr)", ms: (l) => l.asr },
  { key: "first_text", label: "Diffusion LM", color: "var(--c-lm)", ms: (l) => l.first_text },
  { key: "first_audio", label: "Speech synthesis", color: "var(--c-tts)",
    ms: (l) => (num(l.first_audio) === null ? null : num(l.first_audio) - (num(l.first_text) ?? 0)) },
];
export const OTHER = { key: "other", label: "Other", color: "var(--c-other)" };

const SVG_NS = "http://www.w3.org/2000/svg";
const MAX_TURNS = 12; // columns kept on screen
const VIEW_W = 320;
const VIEW_H = 150;
const PAD = { left: 38, right: 6, top: 10, bottom: 18 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceCeil(ms) {
  const steps = [250, 500, 1000, 1500, 2000, 3000, 5000, 10000, 20000];
  return steps.find((s) => s >= ms) ?? Math.ceil(ms / 10000) * 10000;
}

function num(v) {
  return v === null || v === undefined || !Number.isFinite(Number(v)) ? null : Number(v);
}

// latency_ms -> [{key, label, color, ms}] stage durations (missing stages are 0), plus "other" when the
// voice-to-voice total has time the stages do not account for (queueing, scheduling).
export function stageDurations(latency, { withOther = false } = {}) {
  const l = latency || {};
  const parts = STAGES.map((s) => ({ ...s, ms: Math.max(0, num(s.ms(l)) ?? 0) }));
  if (withOther) {
    const rest = (num(l.voice_to_voice) ?? 0) - parts.reduce((a, p) => a + p.ms, 0);
    if (rest >= 1) parts.push({ ...OTHER, ms: rest });
  }
  return parts;
}

// End of speech to first audio; for a typed turn (no speech) the response start to first audio.
export function totalMs(latency) {
  const v2v = num(latency?.voice_to_voice);
  if (v2v !== null && v2v > 0) return v2v;
  return num(latency?.first_audio) ?? stageDurations(latency).reduce((a, s) => a + s.ms, 0);
}

function axisLabel(ms) {
  return ms === 0 ? "0" : `${+(ms / 1000).toFixed(2)} s`;
}

export function formatMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

// turns: [{n, latency}] in order. Redraws the whole chart (a dozen rects: cheaper than diffing).
export function renderChart(svg, turns) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${VIEW_W} ${VIEW_H}`);
  const shown = turns.slice(-MAX_TURNS);
  const plotW = VIEW_W - PAD.left - PAD.right;
  const plotH = VIEW_H - PAD.top - PAD.bottom;
  const top = niceCeil(Math.max(500, ...shown.map((t) => Math.max(totalMs(t.latency), stageSum(t.latency)))));
  const y = (ms) => PAD.top + plotH - (ms / top) * plotH;

  for (const frac of [0, 0.5, 1]) {
    const ms = top * frac;
    svg.append(el("line", { x1: PAD.left, x2: VIEW_W - PAD.right, y1: y(ms), y2: y(ms), class: "grid" }));
    svg.append(el("text", { x: PAD.left - 4, y: y(ms) + 3, class: "axis", "text-anchor": "end" }, axisLabel(ms)));
  }
  if (!shown.length) {
    svg.append(el("text", { x: VIEW_W / 2, y: VIEW_H / 2, class: "empty", "text-anchor": "middle" }, "No turns yet"));
    return;
  }
  const slot = plotW / MAX_TURNS;
  const barW = Math.min(18, slot * 0.62);
  shown.forEach((turn, i) => {
    const x = PAD.left + slot * i + (slot - barW) / 2;
    const g = el("g", { class: "bar" });
    const parts = stageDurations(turn.latency, { withOther: true });
    const summary = parts.map((p) => `${p.label} ${formatMs(p.ms)}`).join(", ");
    g.append(el("title", {}, `Turn ${turn.n}: ${formatMs(totalMs(turn.latency))} voice to voice (${summary})`));
    let acc = 0;
    for (const p of parts) {
      if (p.ms <= 0) continue;
      const h = (p.ms / top) * plotH;
      g.append(el("rect", { x, y: y(acc + p.ms), width: barW, height: Math.max(1, h), fill: p.color, rx: 1.5 }));
      acc += p.ms;
    }
    const total = totalMs(turn.latency);
    g.append(el("line", { x1: x - 3, x2: x + barW + 3, y1: y(total), y2: y(total), class: "total" }));
    g.append(el("text", { x: x + barW / 2, y: VIEW_H - 5, class: "axis", "text-anchor": "middle" }, String(turn.n)));
    svg.append(g);
  });
}

function stageSum(latency) {
  return stageDurations(latency).reduce((a, s) => a + s.ms, 0);
}
