"""Offline test material shared by the tests and the benchmarks (never imported by the product).

`speech`: real speech made with piper and espeak-ng, and transcript comparison.
`tiny_dlm`: a tiny tokenizer and tiny diffusion/AR transformers trained in seconds.
"""
