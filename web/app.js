// The voice chat page: wires the Realtime client, microphone, player, conversation view, tool cards and
// latency chart.

import { API_RATE, Capture, Player, decodePcm16, encodePcm16 } from "./audio.js";
import { OTHER, STAGES, formatMs, renderChart, stageDurations, totalMs } from "./chart.js";
import { Conversation } from "./conversation.js";
import { RealtimeClient, defaultUrl } from "./realtime.js";
import { PRESETS, loadSettings, saveSettings, sessionFromSettings } from "./settings.js";
import { ToolCards } from "./tools.js";

const INTERRUPTED_FLASH_MS = 900; // how long the "Interrupted" state stays before listening again
const TOAST_MS = 7000;
const PROMPT_DEBOUNCE_MS = 600;
const METER_DECAY = 0.82; // level meter falls smoothly between chunks
const METER_GAIN = 4; // speech RMS ~0.05-0.25 -> most of the bar

const $ = (id) => document.getElementById(id);
const ui = {
  start: $("start"), startLabel: $("start-label"), mute: $("mute"), stop: $("interrupt"),
  state: $("state"), stateText: $("state-text"), stateHint: $("state-hint"),
  meter: $("meter"), meterFill: $("meter-fill"), conn: $("conn"), connText: $("conn-text"),
  banner: $("banner"), bannerText: $("banner-text"), retry: $("retry"),
  log: $("log"), empty: $("empty"), form: $("composer"), input: $("composer-input"), send: $("send"),
  chart: $("chart"), latSummary: $("lat-summary"), legend: $("legend"), latLast: $("lat-last"), latMedian: $("lat-median"),
  latCaption: $("lat-caption"),
  preset: $("preset"), turn: $("turn"), custom: $("custom"), threshold: $("threshold"), thresholdOut: $("threshold-out"),
  maxSteps: $("max-steps"), instructions: $("instructions"), toasts: $("toasts"),
  echo: $("echo"), noise: $("noise"), agc: $("agc"),
};

// Counters read by the browser tests (and handy in the console).
const stats = (window.dlmStats = {
  state: "idle", connected: false, framesPlayed: 0, playedMs: 0, flushes: 0, framesDropped: 0,
  chunksSent: 0, bytesSent: 0, audioDeltas: 0, responses: 0, truncates: [], turnMetrics: [], errors: [],
  micStarted: false, speechStarts: 0, timeline: [], heardMs: [], session: null,
});
const TIMELINE_MAX = 300; // server events kept (with arrival time) in dlmStats.timeline

let settings = loadSettings();
let serverInstructions = "";
const client = new RealtimeClient(defaultUrl());
const player = new Player();
const capture = new Capture(onCaptureChunk);

const chat = new Conversation(ui.log, ui.empty);
const tools = new ToolCards(chat);
const audioItems = new Map(); // assistant item_id -> {responseId, startMs, endMs} of audio in the player
let activeResponse = null; // response_id being generated
let phase = "idle";
let phaseTimer = null;
let meterLevel = 0;
let turnCount = 0;
let wasDisconnected = false;
let streamMs = 0; // ms of input audio sent on this connection (the server's stream clock)
const sentLog = []; // [streamMs at chunk end, performance.now() when sent]
const SENT_LOG_MAX = 3000; // one minute of 20 ms chunks
let speechEndWall = null; // wall time the end of the user's speech was sent
let heardMs = null; // speech end -> reply audible, measured here, for the current turn
const chartTurns = [];

// ---------------------------------------------------------------- state display

const PHASES = {
  idle: ["Ready", "Press Start and talk, or type below."],
  listening: ["Listening", "Go ahead, I'm listening."],
  hearing: ["Listening", "Hearing you…"],
  thinking: ["Thinking", "Writing a reply with the diffusion model…"],
  speaking: ["Speaking", "Talk over me any time to interrupt."],
  interrupted: ["Interrupted", "Stopped talking; listening again."],
  disconnected: ["Disconnected", "Waiting for the server…"],
};

function setPhase(next) {
  clearTimeout(phaseTimer);
  phase = next;
  const shown = client.open ? next : "disconnected";
  stats.state = shown;
  const [label, hint] = PHASES[shown];
  document.body.dataset.state = shown;
  ui.stop.disabled = !(shown === "speaking" || shown === "thinking" || player.playing || activeResponse);
  ui.stateText.textContent = label;
  ui.stateHint.textContent = shown === "idle" && capture.running ? PHASES.listening[1] : hint;
}

function restPhase() {
  return capture.running ? "listening" : "idle";
}

function settle() {
  if (player.playing) return setPhase("speaking");
  if (activeResponse) return setPhase("thinking");
  setPhase(restPhase());
}

// ---------------------------------------------------------------- messages

function toast(message, kind = "error") {
  const node = document.createElement("div");
  node.className = `toast ${kind}`;
  node.setAttribute("role", kind === "error" ? "alert" : "status");
  const text = document.createElement("span");
  text.textContent = message;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.setAttribute("aria-label", "Dismiss message");
  close.textContent = "×";
  close.onclick = () => node.remove();
  node.append(text, close);
  ui.toasts.append(node);
  setTimeout(() => node.remove(), TOAST_MS);
}

function showBanner(text) {
  ui.bannerText.textContent = text;
  ui.banner.hidden = false;
}

function micErrorMessage(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access was denied. Allow the microphone for this site (the icon in the address bar), then press Start again — or type your message below.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Plug one in and press Start again, or type your message below.";
    case "NotReadableError":
      return "The microphone is busy in another application. Close it there and press Start again.";
    case "InsecureContextError":
      return err.message;
    default:
      return `Could not start the microphone: ${err?.message || err}`;
  }
}

// ---------------------------------------------------------------- latency

function recordLatency(event) {
  const latency = event.latency_ms || {};
  if (latency.first_audio === null || latency.first_audio === undefined) return; // cut before it spoke
  turnCount += 1;
  chartTurns.push({ n: turnCount, latency });
  stats.turnMetrics.push(latency);
  renderChart(ui.chart, chartTurns);
  const parts = stageDurations(latency, { withOther: true })
    .filter((s) => s.ms > 0)
    .map((s) => `${s.label} ${formatMs(s.ms)}`);
  const v2v = Number(latency.voice_to_voice);
  ui.latSummary.textContent = Number.isFinite(v2v) && latency.voice_to_voice !== null
    ? `Turn ${turnCount}: ${formatMs(v2v)} from the end of your speech to the first reply audio` +
      (parts.length ? `: ${parts.join(" · ")}.` : ".")
    : `Turn ${turnCount} (typed): first audio after ${formatMs(totalMs(latency))}` +
      (parts.length ? `: ${parts.join(" · ")}.` : ".");
  chat.attachLatency(event.response_id, latency);
  ui.latLast.textContent = formatMs(totalMs(latency));
  const spoken = latency.voice_to_voice !== null && latency.voice_to_voice !== undefined;
  ui.latCaption.innerText = spoken ? "last turn\nend of speech → first audio" : "last turn (typed)\nrequest → first audio";
  if (heardMs !== null && latency.voice_to_voice !== null && latency.voice_to_voice !== undefined) {
    ui.latSummary.textContent += ` In this browser you heard it ${formatMs(heardMs)} after you stopped talking.`;
    heardMs = null;
  }
  const all = chartTurns.map((t) => totalMs(t.latency)).sort((a, b) => a - b);
  if (all.length > 1) {
    ui.latMedian.hidden = false;
    ui.latMedian.textContent = `median ${formatMs(all[Math.floor((all.length - 1) / 2)])}\nover ${all.length} turns`;
  }
}

// ---------------------------------------------------------------- server events

async function bargeIn() {
  const { playedMs, droppedMs } = await player.flush();
  syncStats();
  for (const [itemId, info] of audioItems) if (info.endMs <= playedMs) audioItems.delete(itemId); // heard in full
  if (droppedMs <= 0) return false;
  // Tell the server how much of each cut reply was actually heard (per assistant item).
  for (const [itemId, info] of audioItems) {
    const heard = Math.max(0, Math.round(playedMs - info.startMs));
    client.send({ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: heard });
    stats.truncates.push({ item_id: itemId, audio_end_ms: heard });
    chat.markInterrupted(chat.replies.get(info.responseId));
  }
  audioItems.clear();
  return true;
}

// Items of the conversation: messages are drawn from their transcript events; function calls and their outputs
// become tool cards. Any other item type is not drawn.
function onItem(item, responseId) {
  if (item?.type === "function_call") tools.call(item, responseId);
  else if (item?.type === "function_call_output") tools.output(item);
}

const handlers = {
  "session.created": (e) => {
    serverInstructions = e.session?.instructions || "";
    if (serverInstructions) ui.instructions.placeholder = serverInstructions;
    sendSession();
  },
  "session.updated": (e) => {
    stats.session = e.session;
  },
  "input_audio_buffer.speech_started": async (e) => {
    stats.speechStarts += 1;
    // The server cancels the reply it was writing; audio of it still in flight must not play.
    if (activeResponse) chat.reply(activeResponse).cancelled = true;
    chat.user(e.item_id);
    const cut = await bargeIn();
    if (cut) {
      setPhase("interrupted");
      phaseTimer = setTimeout(() => setPhase("hearing"), INTERRUPTED_FLASH_MS);
    } else setPhase("hearing");
  },
  "input_audio_buffer.speech_stopped": (e) => {
    speechEndWall = typeof e.audio_end_ms === "number" ? sentAt(e.audio_end_ms) : null;
    heardMs = null;
    chat.user(e.item_id);
    setPhase("thinking");
  },
  "conversation.item.input_audio_transcription.delta": (e) => {
    const li = chat.user(e.item_id);
    li.dataset.partial = (li.dataset.partial || "") + (e.delta || "");
    chat.setText(li, li.dataset.partial, { pending: true });
  },
  "conversation.item.input_audio_transcription.completed": (e) => {
    const text = (e.transcript || "").trim();
    if (text) chat.setText(chat.user(e.item_id), text);
    else chat.dropUser(e.item_id);
  },
  "conversation.item.input_audio_transcription.failed": (e) => chat.dropUser(e.item_id),
  "response.created": (e) => {
    activeResponse = e.response?.id ?? null;
    const reply = activeResponse ? chat.reply(activeResponse) : null;
    const meta = e.response?.metadata;
    if (meta?.source === "timer") {
      // The server's own response announcing a timer that rang; no user turn asked for it.
      tools.timerFired(meta.timer);
      if (reply) chat.tag(reply, meta.timer?.label ? `timer: ${meta.timer.label}` : "timer", "timer");
    }
    stats.responses += 1;
    if (!player.playing) setPhase("thinking");
  },
  // A response may hold a function call (output_index 0) before or instead of its message.
  "response.output_item.added": (e) => onItem(e.item, e.response_id),
  "response.output_item.done": (e) => onItem(e.item, e.response_id),
  "response.function_call_arguments.delta": (e) => tools.argsDelta(e),
  "response.function_call_arguments.done": (e) => tools.argsDone(e),
  "conversation.item.added": (e) => onItem(e.item, activeResponse),
  "conversation.item.done": (e) => onItem(e.item, activeResponse),
  "response.output_audio_transcript.delta": (e) => chat.appendReply(e.response_id, e.delta || ""),
  "response.output_text.delta": (e) => chat.appendReply(e.response_id, e.delta || ""),
  "response.output_audio.delta": (e) => {
    const r = chat.replies.get(e.response_id);
    if (r?.interrupted || r?.cancelled) return; // in flight when the user barged in
    stats.audioDeltas += 1;
    const samples = decodePcm16(e.delta);
    const durMs = (samples.length / API_RATE) * 1000;
    player.ensure().then(() => {
      const startMs = player.push(samples);
      const info = audioItems.get(e.item_id) ?? { responseId: e.response_id, startMs, endMs: startMs };
      info.endMs = startMs + durMs;
      audioItems.set(e.item_id, info);
    });
  },
  "response.done": (e) => {
    const id = e.response?.id;
    const status = e.response?.status;
    const r = id ? chat.replies.get(id) : null;
    for (const item of e.response?.output ?? []) onItem(item, id); // calls whose events this page missed
    tools.responseEnded(id, status);
    if (r) {
      r.el.classList.remove("pending");
      if (status === "completed" && !r.text && tools.inResponse(id)) {
        r.el.remove(); // only a tool call: its card says what happened
      } else if (status === "cancelled") {
        if (r.text) chat.markInterrupted(r);
        else r.el.remove(); // cut before it said anything
      } else if (status === "failed") {
        const why = e.response?.status_details?.error?.message || e.response?.status_details?.reason || status;
        r.el.classList.add("failed");
        if (!r.text) chat.setText(r.el, `(no reply: ${why})`);
      }
    }
    if (activeResponse === id) activeResponse = null;
    if (phase !== "interrupted" && phase !== "hearing") settle();
  },
  "dlm.turn_metrics": (e) => recordLatency(e),
  error: (e) => {
    stats.errors.push(e.error || {});
    toast(`Server: ${e.error?.message || "the server reported an error."}`);
  },
};

function syncStats() {
  stats.framesPlayed = player.framesPlayed;
  stats.playedMs = Math.round(player.playedMs);
  stats.flushes = player.flushes;
  stats.framesDropped = player.framesDropped;
}

function sendSession() {
  const session = sessionFromSettings(settings);
  if (!session.instructions && serverInstructions) session.instructions = serverInstructions;
  client.send({ type: "session.update", session });
}

// ---------------------------------------------------------------- capture / typing

function onCaptureChunk(pcm, level) {
  meterLevel = Math.max(meterLevel * METER_DECAY, capture.muted ? 0 : level);
  if (client.send({ type: "input_audio_buffer.append", audio: encodePcm16(pcm) })) {
    stats.chunksSent += 1;
    stats.bytesSent += pcm.byteLength;
    streamMs += (pcm.byteLength / 2 / API_RATE) * 1000;
    sentLog.push([streamMs, performance.now()]);
    if (sentLog.length > SENT_LOG_MAX) sentLog.splice(0, sentLog.length - SENT_LOG_MAX);
  }
}

// When did this page send the input audio at `ms` of the server's stream (the VAD's speech end)?
function sentAt(ms) {
  for (let i = sentLog.length - 1; i >= 0; i--) {
    if (sentLog[i][0] < ms) return sentLog[Math.min(i + 1, sentLog.length - 1)][1];
  }
  return sentLog.length ? sentLog[0][1] : null;
}

// End of the user's speech -> first reply audio out of the speakers, as this page saw it.
function onReplyAudible() {
  if (speechEndWall === null) return;
  const outputMs = ((player.outputLatency ?? 0) * 1000) || 0;
  heardMs = performance.now() - speechEndWall + outputMs;
  speechEndWall = null;
  stats.heardMs.push(Math.round(heardMs));
}

async function startMic() {
  ui.start.disabled = true;
  try {
    await player.ensure();
    await capture.start(settings);
    stats.micStarted = true;
    capture.onEnded = () => {
      stopMic();
      toast("The microphone stopped (unplugged or blocked). Press Start to try again.");
    };
    ui.start.setAttribute("aria-pressed", "true");
    ui.startLabel.textContent = "Stop";
    ui.start.setAttribute("aria-label", "Stop talking (turn the microphone off)");
    ui.mute.disabled = false;
    if (!client.open) client.connect();
    setPhase(phase === "idle" ? "listening" : phase);
  } catch (err) {
    toast(micErrorMessage(err));
    setPhase(restPhase());
  } finally {
    ui.start.disabled = false;
  }
}

function stopMic() {
  capture.stop();
  setMuted(false);
  ui.start.setAttribute("aria-pressed", "false");
  ui.startLabel.textContent = "Start";
  ui.start.setAttribute("aria-label", "Start talking (turn the microphone on)");
  ui.mute.disabled = true;
  meterLevel = 0;
  if (phase === "listening" || phase === "hearing") setPhase("idle");
  else setPhase(phase);
}

function setMuted(muted) {
  capture.setMuted(muted);
  ui.mute.setAttribute("aria-pressed", String(muted));
  ui.mute.querySelector(".label").textContent = muted ? "Unmute" : "Mute";
  document.body.classList.toggle("muted", muted);
}

async function interrupt() {
  if (activeResponse) {
    chat.reply(activeResponse).cancelled = true;
    client.send({ type: "response.cancel" });
  }
  const cut = await bargeIn();
  if (cut || activeResponse) {
    setPhase("interrupted");
    phaseTimer = setTimeout(settle, INTERRUPTED_FLASH_MS);
  }
}

async function sendText(text) {
  if (!client.open) {
    toast("Not connected to the server yet; your message was not sent. It will reconnect by itself.");
    return false;
  }
  await player.ensure(); // the keypress/click is the user gesture that lets audio play
  if (player.playing || activeResponse) await interrupt();
  const li = chat.add("user", text);
  li.classList.add("typed");
  client.send({
    type: "conversation.item.create",
    item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
  });
  client.send({ type: "response.create" });
  setPhase("thinking");
  return true;
}

// ---------------------------------------------------------------- settings

function fillSettings() {
  ui.preset.value = settings.preset;
  ui.turn.value = settings.turn;
  ui.custom.checked = settings.custom;
  ui.threshold.value = String(settings.threshold);
  ui.thresholdOut.textContent = Number(settings.threshold).toFixed(2);
  ui.maxSteps.value = String(settings.maxSteps);
  ui.threshold.disabled = ui.maxSteps.disabled = !settings.custom;
  ui.instructions.value = settings.instructions;
  ui.echo.checked = settings.echoCancellation;
  ui.noise.checked = settings.noiseSuppression;
  ui.agc.checked = settings.autoGainControl;
}

let promptTimer = null;
function updateSettings(patch, { session = true, restartMic = false } = {}) {
  settings = { ...settings, ...patch };
  saveSettings(settings);
  fillSettings();
  if (session) sendSession();
  if (restartMic && capture.running) startMic();
}

function bindSettings() {
  ui.preset.onchange = () => updateSettings({ preset: ui.preset.value });
  ui.turn.onchange = () => updateSettings({ turn: ui.turn.value });
  ui.custom.onchange = () => updateSettings({ custom: ui.custom.checked });
  ui.threshold.oninput = () => (ui.thresholdOut.textContent = Number(ui.threshold.value).toFixed(2));
  ui.threshold.onchange = () => updateSettings({ threshold: Number(ui.threshold.value) });
  ui.maxSteps.onchange = () => {
    const v = Math.round(Number(ui.maxSteps.value));
    if (v >= 1 && v <= 64) updateSettings({ maxSteps: v });
    else ui.maxSteps.value = String(settings.maxSteps);
  };
  ui.instructions.oninput = () => {
    clearTimeout(promptTimer);
    promptTimer = setTimeout(() => updateSettings({ instructions: ui.instructions.value }), PROMPT_DEBOUNCE_MS);
  };
  const processing = (key, box) => (box.onchange = () => updateSettings({ [key]: box.checked }, { session: false, restartMic: true }));
  processing("echoCancellation", ui.echo);
  processing("noiseSuppression", ui.noise);
  processing("autoGainControl", ui.agc);
}

// ---------------------------------------------------------------- wiring

function onStatus(e) {
  const { state, retryInMs } = e.detail;
  stats.connected = state === "open";
  ui.conn.dataset.state = state;
  if (state === "open") {
    streamMs = 0; // a new connection is a new server session and input stream
    sentLog.length = 0;
    ui.connText.textContent = "Connected";
    if (wasDisconnected) toast("Reconnected. The server starts a fresh conversation.", "info");
    wasDisconnected = false;
    ui.banner.hidden = true;
    settle();
  } else if (state === "connecting") {
    ui.connText.textContent = "Connecting…";
  } else {
    ui.connText.textContent = "Offline";
    activeResponse = null;
    tools.endSession(); // the server's session (and its timers) ended with the connection
    if (retryInMs !== undefined) {
      wasDisconnected = true;
      showBanner(`Connection to the server was lost. Reconnecting in ${Math.max(1, Math.round(retryInMs / 1000))} s…`);
    }
    setPhase(phase);
  }
}

function animate() {
  const level = phase === "speaking" || player.playing ? player.level : meterLevel;
  const v = Math.min(1, level * METER_GAIN);
  document.body.style.setProperty("--level", v.toFixed(3));
  ui.meterFill.style.transform = `scaleX(${capture.running ? Math.min(1, meterLevel * METER_GAIN) : 0})`;
  ui.meter.setAttribute("aria-valuenow", String(Math.round(Math.min(1, meterLevel * METER_GAIN) * 100)));
  meterLevel *= METER_DECAY;
  syncStats();
  requestAnimationFrame(animate);
}

function init() {
  for (const s of [...STAGES, OTHER]) {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = s.color;
    li.append(sw, document.createTextNode(s.label));
    ui.legend.append(li);
  }
  for (const p of PRESETS) if (![...ui.preset.options].some((o) => o.value === p)) ui.preset.add(new Option(p, p));
  fillSettings();
  bindSettings();
  renderChart(ui.chart, chartTurns);

  ui.start.onclick = () => (capture.running ? stopMic() : startMic());
  ui.mute.onclick = () => setMuted(!capture.muted);
  ui.stop.onclick = () => interrupt();
  ui.retry.onclick = () => client.retryNow();
  ui.form.onsubmit = async (ev) => {
    ev.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    if (await sendText(text)) ui.input.value = "";
  };
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") interrupt();
  });

  player.addEventListener("started", () => {
    onReplyAudible();
    setPhase("speaking");
  });
  player.addEventListener("drained", () => {
    if (phase === "speaking") settle();
  });
  client.addEventListener("status", onStatus);
  client.addEventListener("server", (e) => {
    if (!e.detail.type?.endsWith(".delta") && stats.timeline.length < TIMELINE_MAX) {
      stats.timeline.push({ type: e.detail.type, t: Math.round(performance.now()) });
    }
    const handler = handlers[e.detail.type];
    if (handler) handler(e.detail);
  });
  setPhase("idle");
  client.connect();
  requestAnimationFrame(animate);
}

init();
