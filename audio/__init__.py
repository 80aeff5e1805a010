"""The assistant's ears and mouth: PCM helpers, faster-whisper ASR, piper TTS and sound devices (turn-taking
lives in `turn_taking`). Submodules import their engines lazily, so `import audio` stays cheap."""
