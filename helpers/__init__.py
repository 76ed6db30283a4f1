"""Shared implementation behind the notebooks: audio, corpora, features, collator, metrics,
model loading (Hub, local, CTranslate2, embedded), LoRA, training and the run directory."""
