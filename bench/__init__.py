"""Benchmarks: `python -m bench.dlm_speed`, `python -m bench.gpu_dlm`, ..."""
