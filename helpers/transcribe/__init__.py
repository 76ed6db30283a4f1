"""Stage 05, transcription: batched decoding of clips and long-form decoding of recordings.

`decode` (Whisper's generate with the project's rules: temperature fallback, seeded, the
token cap), `long_form` (sequential 30 s windows streamed from the file). Command:
`python -m helpers.transcribe PATH...`.
"""
