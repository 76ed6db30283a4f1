"""Stages 02-03, the model: Whisper from every source and precision, and LoRA adapters.

`load` (sources, precisions, 8-bit on a CPU, the CTranslate2 conversion cache), `ct2`
(CTranslate2 model.bin reader/writer: the embedded weights ship in that format),
`architectures` (the OpenAI architectures offline, meta-device and random models),
`adapters` (inject, count, save and load LoRA adapters safely).
"""
