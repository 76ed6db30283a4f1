"""Stage 06, evaluation: error rates of a model on a split, tables, forgetting, long-form.

`scoring` (transcribe a split and score it; long-form scores), `tables` (the DataFrames the
notebooks show), `forgetting` (English with the adapter off and on), `long_form` (notebook
06's check of notebook 05's long recording). Command: `python -m helpers.evaluate`.
"""
