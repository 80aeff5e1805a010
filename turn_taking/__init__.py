"""Turn-taking: deciding that the user has finished speaking.

A 16 kHz stream goes through `vad` (Silero and the quiet/starting/speaking/stopping state machine) into
`endpoint` (speculative Whisper at the first pause, and the silence each verdict needs), which asks
`judge` whether a paused turn is complete. The judge combines the end-of-turn signals: the sound
(`smart_turn`), the words scored by the AR twin (`twin`) and by a counted table (`sentence_ends`, read
from `tables/`), and Whisper's confidence in the last word. Submodules import their models lazily, so
`import turn_taking` stays cheap."""
