"""Data, tokenizer and templates for training the bundled voice-assistant diffusion LM.

Not installed with the package (the runtime never needs it); `python -m training.train` trains with it.
"""
