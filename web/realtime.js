// A small OpenAI Realtime (GA dialect) websocket client with automatic reconnection.
//
// Events dispatched: "status" (detail: {state: "connecting"|"open"|"closed", retryInMs, attempt}),
// "server" (detail: one parsed server event). Sending while closed returns false; the page decides
// what that means (audio chunks are simply dropped, typed text shows a message).

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 10000;

export function defaultUrl() {
  const override = new URLSearchParams(location.search).get("ws");
  if (override) return override;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/realtime`;
}

// A server bound beyond this machine wants an API key. A browser cannot set headers on a websocket, so
// the key travels as a subprotocol (OpenAI's convention); the page takes it from its URL fragment
// (`#key=...`), which the browser never sends to the server or writes into its logs.
export function apiKeyProtocols() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  return key ? ["realtime", `openai-insecure-api-key.${key}`] : undefined;
}

export class RealtimeClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.wanted = false;
    this.seq = 0;
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  connect() {
    this.wanted = true;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.status("connecting");
    const ws = new WebSocket(this.url, apiKeyProtocols());
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.status("open");
    };
    ws.onmessage = (e) => {
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        event = { type: "error", error: { type: "client_error", message: "unreadable message from server" } };
      }
      this.dispatchEvent(new CustomEvent("server", { detail: event }));
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.wanted) return this.status("closed", { code: e.code });
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), delay);
      this.status("closed", { retryInMs: delay, attempt: this.attempt, code: e.code });
    };
  }

  // Skip the remaining backoff wait.
  retryNow() {
    this.attempt = 0;
    this.connect();
  }

  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.ws?.close();
  }

  send(event) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify({ event_id: `evt_web_${++this.seq}`, ...event }));
    return true;
  }

  status(state, extra = {}) {
    this.dispatchEvent(new CustomEvent("status", { detail: { state, ...extra } }));
  }
}
