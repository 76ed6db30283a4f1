"""The one implementation behind the notebooks, grouped by stage; imports nothing itself.

Foundation (imported by every stage): `files` (paths, atomic writes), `audio`, `metrics`,
`colab`, `quiet`, `config` (presets, RunConfig), `run` (the run directory).
Stages, each a package whose `__main__` is its command, in the order data flows:
`data` (corpora -> filtered rows -> features; notebook 01), `model` (loading, 8-bit,
LoRA adapters, CTranslate2 weights; 02-03), `transcribe` (decoding, long-form; 05),
`train` (04), `evaluate` (scores, forgetting, long-form check; 06), `footprint` (memory),
`export`, `publish`, `notebook` (what the cells show). Commands at the top: `app`, `demo`,
`long_form`. Arrows go from later stages to earlier ones, never back.
"""
