"""Stage 04, training: the Trainer set up for LoRA on an 8-bit base, checkpoints and resume.

`trainer` (the stage, as notebook 04 and the command run it), `checkpoints` (what a
resumable checkpoint holds, cleaning what a killed run left), `collator`. Command:
`python -m helpers.train --config runs/<name>/config.json` (also under `torchrun -m`).
"""
