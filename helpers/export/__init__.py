"""Export a tuned model for the engines users deploy to.

`merge` (the adapter merged into a plain fp32 Whisper), `ctranslate2` (that model
converted for CTranslate2 / faster-whisper, and transcribed there). Command:
`python -m helpers.export --adapter DIR --to merged|ct2 --out DIR`.
"""
