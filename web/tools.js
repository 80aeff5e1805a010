// Tool activity in the conversation view: one card per function call, filled in as the model streams its
// arguments and the output arrives. A set_timer card counts down until the server's own timer response.
//
// Hooks for the browser tests: <li class="tool-card" data-call-id data-name data-state> with .tool-args,
// .tool-result and (timers) .tool-timer; data-state is running | done | error | cancelled | fired.

const MAX_VALUE_CHARS = 80; // longer argument / result values are cut; the card's tooltip has them in full
const TICK_MS = 1000; // countdowns show whole seconds

// The words shown for each state, so the state is text and not only the card's colour.
const STATE_WORDS = { running: "running…", done: "done", error: "error", cancelled: "cancelled", fired: "done" };

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const clip = (s) => (s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS - 1)}…` : s);

// Strings are quoted in arguments (they are code) and bare in results (they are answers).
function valueText(v, quote) {
  if (typeof v === "string") return quote ? JSON.stringify(v) : v;
  if (v === null || typeof v !== "object") return String(v);
  return JSON.stringify(v);
}

const pairs = (obj, quote) => Object.entries(obj).map(([k, v]) => `${k}: ${clip(valueText(v, quote))}`).join(", ");

// '{"expression":"9*8"}' -> 'expression: "9*8"'. Arguments still streaming are not JSON yet: shown as they are.
export function formatArgs(args) {
  const parsed = parseJson(args || "{}");
  return isObject(parsed) ? pairs(parsed, true) : clip(String(args).trim());
}

// A tool's JSON output -> {text, error}: its "text" when it has one, else compact `key: value` pairs.
export function formatOutput(output) {
  const parsed = parseJson(output);
  if (parsed === undefined) return { text: clip(String(output ?? "")), error: false }; // not JSON: as sent
  if (isObject(parsed) && "error" in parsed) return { text: valueText(parsed.error, false), error: true };
  if (isObject(parsed) && typeof parsed.text === "string") return { text: parsed.text, error: false };
  return { text: isObject(parsed) ? pairs(parsed, false) : clip(valueText(parsed, false)), error: false };
}

// Seconds left -> "4:05", or "1:02:03" from an hour up. Rounded up, so 0:00 means it is due.
export function formatCountdown(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function span(className, text = "") {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  return node;
}

export class ToolCards {
  constructor(chat) {
    this.chat = chat; // the Conversation the cards go into
    this.calls = new Map(); // call_id -> card {el, name, args, argsDone, hasOutput, responseId, ...}
    this.timers = new Map(); // server timer id -> its set_timer card
    this.live = new Set(); // cards whose countdown is running
    this.ticker = null; // one interval for all countdowns, running only while one is live
  }

  // A function_call item, from response.output_item.* or conversation.item.*: create or update its card.
  // The same item arrives up to four times; the longest arguments seen win.
  call(item, responseId) {
    const card = this.card(item.call_id, item.name, responseId);
    if (!card) return;
    const args = item.arguments || "";
    if (args.length >= card.args.length) card.args = args;
    if (item.status === "completed") card.argsDone = true;
    this.showArgs(card);
  }

  argsDelta(e) {
    const card = this.card(e.call_id, e.name, e.response_id);
    if (!card || card.argsDone) return;
    card.args += e.delta || "";
    this.showArgs(card);
  }

  argsDone(e) {
    const card = this.card(e.call_id, e.name, e.response_id);
    if (!card) return;
    card.args = e.arguments ?? card.args;
    card.argsDone = true;
    this.showArgs(card);
  }

  // A function_call_output item (added, then done: the second changes nothing).
  output(item) {
    const card = this.calls.get(item.call_id);
    if (!card || card.hasOutput) return;
    card.hasOutput = true;
    card.argsDone = true;
    const { text, error } = formatOutput(item.output);
    card.result.textContent = error ? `Error: ${text}` : text;
    card.result.title = String(item.output ?? "");
    if (error) return this.setState(card, "error");
    const data = parseJson(item.output);
    if (card.name === "set_timer" && isObject(data) && data.id !== undefined) return this.startTimer(card, data);
    if (card.name === "cancel_timer" && Array.isArray(data?.cancelled)) {
      for (const id of data.cancelled) this.stopTimer(this.timers.get(String(id)), "cancelled");
    }
    if (card.name === "list_timers" && Array.isArray(data?.timers)) {
      for (const t of data.timers) this.refreshTimer(this.timers.get(String(t.id)), t.seconds_left);
    }
    this.setState(card, "done");
  }

  // The server started the response that announces a timer (response.metadata.timer).
  timerFired(timer) {
    this.stopTimer(this.timers.get(String(timer?.id)), "fired");
  }

  // Whether any call was made in this response (its reply bubble may then rightly stay empty).
  inResponse(responseId) {
    for (const card of this.calls.values()) if (card.responseId === responseId) return true;
    return false;
  }

  // A response cut or failed while the model was still writing a call: that call will never run.
  responseEnded(responseId, status) {
    if (status === "completed") return;
    for (const card of this.calls.values()) {
      if (card.responseId === responseId && !card.argsDone && !card.hasOutput) this.setState(card, "cancelled");
    }
  }

  // The connection closed: the server's session, its timers and any call still waiting went with it.
  endSession() {
    for (const card of this.calls.values()) {
      if (card.el.dataset.state === "running") this.stopTimer(card, "cancelled", "cancelled (connection lost)");
    }
  }

  // ------------------------------------------------------------ internals

  card(callId, name, responseId) {
    if (!callId) return null;
    let card = this.calls.get(callId);
    if (!card) {
      card = this.build(callId, name || "tool");
      card.responseId = responseId ?? null;
      this.calls.set(callId, card);
      this.chat.place(card.el, card.responseId);
    } else {
      if (!card.responseId && responseId) card.responseId = responseId;
      if (name && card.name === "tool") card.name = card.el.dataset.name = card.nameEl.textContent = name; // seen a delta first
    }
    return card;
  }

  build(callId, name) {
    const el = document.createElement("li");
    el.className = "tool-card";
    el.dataset.callId = callId;
    el.dataset.name = name;
    el.dataset.state = "running";
    const head = document.createElement("div");
    head.className = "tool-head";
    const icon = span("tool-icon", name === "set_timer" ? "◷" : "⚙");
    icon.setAttribute("aria-hidden", "true");
    const args = document.createElement("code");
    args.className = "tool-args";
    const params = span("tool-params");
    const nameEl = span("tool-name", name);
    args.append(nameEl, "(", params, ")");
    const status = span("tool-status", STATE_WORDS.running);
    head.append(icon, span("sr-only", "Tool call: "), args, status);
    const result = document.createElement("p");
    result.className = "tool-result";
    el.append(head, result);
    return { el, name, args: "", argsDone: false, hasOutput: false, nameEl, params, status, result };
  }

  showArgs(card) {
    card.params.textContent = formatArgs(card.args);
    card.params.title = card.argsDone ? card.args : "";
  }

  setState(card, state, words = STATE_WORDS[state]) {
    card.el.dataset.state = state;
    card.status.textContent = words;
  }

  startTimer(card, data) {
    card.timerId = String(data.id);
    this.timers.set(card.timerId, card);
    const row = document.createElement("p");
    row.className = "tool-clock";
    card.clock = span("tool-timer");
    card.clock.setAttribute("role", "timer");
    card.clock.setAttribute("aria-live", "off"); // the log is a live region; a ticking clock must not chatter
    row.append(span("sr-only", "Time left: "), card.clock);
    if (data.label) row.append(span("tool-timer-label", String(data.label)));
    if (data.fires_at) row.title = `Rings at ${data.fires_at}`;
    card.el.append(row);
    this.setState(card, "running", "counting down");
    this.refreshTimer(card, Number(data.seconds) || 0);
  }

  // Seconds left as the server counts them, from now on this page's clock.
  refreshTimer(card, seconds) {
    if (!card?.clock || card.el.dataset.state !== "running" || !Number.isFinite(Number(seconds))) return;
    card.endsAt = performance.now() + Number(seconds) * 1000;
    card.clock.textContent = formatCountdown(Number(seconds));
    this.live.add(card);
    this.ticker ??= setInterval(() => this.tick(), TICK_MS);
  }

  stopTimer(card, state, words) {
    if (!card || card.el.dataset.state !== "running") return;
    this.live.delete(card);
    if (state === "fired" && card.clock) card.clock.textContent = formatCountdown(0);
    this.setState(card, state, words);
  }

  tick() {
    const now = performance.now();
    for (const card of this.live) {
      const left = (card.endsAt - now) / 1000;
      card.clock.textContent = formatCountdown(left);
      if (left <= 0) this.live.delete(card); // stays "running" at 0:00 until the timer's response arrives
    }
    if (!this.live.size) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }
}
