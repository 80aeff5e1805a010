// Settings remembered in localStorage, with defaults and light validation (bad stored values are ignored).

const KEY = "dlm-voice.settings.v1";

export const PRESETS = ["fastest", "balanced", "quality"];

export const DEFAULTS = Object.freeze({
  preset: "balanced", // diffusion speed/quality knob (session.dlm.preset)
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
  return s;
}

export function saveSettings(s) {
  try {
    localStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    // private mode or full storage: settings just are not remembered
  }
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
        turn_detection: { type: "server_vad", create_response: true, interrupt_response: true },
      },
      output: { format: { type: "audio/pcm", rate: 24000 } },
    },
    dlm,
  };
  if (s.instructions.trim()) session.instructions = s.instructions.trim();
  return session;
}
