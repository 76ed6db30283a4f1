"""Memory: what a model and a training step take, counted offline, estimated and measured.

`count` (parameters and adapter bytes from shapes, no weights), `estimate` (peak memory of
a training step on a GPU or CPU), `measure` (weights loaded at each precision, live tensor
bytes), `process_memory` (this process's RSS). Command: `python -m helpers.footprint`.
"""
