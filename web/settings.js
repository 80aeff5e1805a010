// Settings remembered in localStorage, with defaults and light validation (bad stored values are ignored).

const KEY = "dlm-voice.settings.v1";

export const PRESETS = ["auto", "fastest", "balanced", "quality"];
export const TURN_MODES = ["auto", "high", "low", "silence"]; // semantic_vad eagerness, or server_vad

export const DEFAULTS = Object.freeze({
  preset: "auto", // diffusion speed/quality knob (session.dlm.preset); auto: the model's own decoding
  turn: "auto", // end of turn: judged from what was said (semantic_vad eagerness), or "silence" (server_vad)
  custom: false, // send threshold / max_steps_per_block overrides too
  threshold: 0.9, // confidence needed to commit a token in parallel
  maxSteps: 8, // forward passes allowed per block
  instructions: "", // empty = the server's default system prompt
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
});

export function loadSettings() {
  let stored = {};
  try {
    stored = JSON.parse(localStorage.getItem(KEY) || "{}") || {};
  } catch {
    stored = {};
  }
  const s = { ...DEFAULTS };
  for (const [k, v] of Object.entries(stored)) {
    if (k in DEFAULTS && typeof v === typeof DEFAULTS[k]) s[k] = v;
  }
  if (!PRESETS.includes(s.preset)) s.preset = DEFAULTS.preset;
  if (!TURN_MODES.includes(s.turn)) s.turn = DEFAULTS.turn;
  return s;
}

export function saveSettings(s) {
  try {
    localStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    // private mode or full storage: settings just are not remembered
  }
}

function turnDetection(mode) {
  const flags = { create_response: true, interrupt_response: true };
  if (mode === "silence") return { type: "server_vad", ...flags };
  return { type: "semantic_vad", eagerness: mode, ...flags };
}

// Settings -> the session object of a session.update event.
export function sessionFromSettings(s) {
  const dlm = { preset: s.preset };
  if (s.custom) {
    dlm.threshold = Number(s.threshold);
    dlm.max_steps_per_block = Math.round(Number(s.maxSteps));
  }
  const session = {
    type: "realtime",
    output_modalities: ["audio"],
    audio: {
      input: {
        format: { type: "audio/pcm", rate: 24000 },
        turn_detection: turnDetection(s.turn),
      },
      output: { format: { type: "audio/pcm", rate: 24000 } },
    },
    dlm,
  };
  if (s.instructions.trim()) session.instructions = s.instructions.trim();
  return session;
}
