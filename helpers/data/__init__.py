"""Stage 01, data: corpora by name or folder -> filtered rows -> log-mel features and labels.

`corpora` loads every source with one schema, `fetch` downloads Common Voice from the
Mozilla Data Collective, `filter` drops and counts bad rows, `features` and `timestamps`
make the model's inputs and labels, `prepare` runs the stage into a run directory,
`streaming` computes features on the fly instead, `packing` joins training clips into 30 s
windows (PACK), `long_form` builds long test recordings.
Command: `python -m helpers.data summary PATH`.
"""
