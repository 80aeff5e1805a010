"""The assistant's ears and mouth: PCM helpers, Silero VAD, faster-whisper ASR with endpointing, piper TTS
and sound devices. Submodules import their engines lazily, so `import audio` stays cheap."""
