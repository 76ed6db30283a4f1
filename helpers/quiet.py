"""Silence library messages a user cannot act on; each filter says why it is safe.

`quiet_libraries()` is called by every entry point (the notebooks' setup cell and the
`python -m helpers.*` commands). It filters single known messages by their text, never
whole loggers, so anything new or actionable still reaches the terminal.
"""
from __future__ import annotations

import logging
import warnings

# (logger name, start of the message, why hiding it is safe)
LOG_FILTERS = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward",
     "on AVX-512 BF16 CPUs bitsandbytes tries an optional kernel from the Hugging Face Hub "
     "(package `kernels`) and falls back to its own 4-bit CPU kernel, which gives the same "
     "results; nothing needs installing"),
    ("bitsandbytes.autograd._functions", "MatMul8bitLt: inputs will be cast",
     "LLM.int8() quantizes each layer's input through float16 by design: it is the 8-bit "
     "method the recipe uses, and the activations here stay far inside float16's range"),
    ("transformers.generation.utils", "Passing `generation_config` together with",
     "raised by transformers' own Whisper generate, which passes suppress_tokens beside the "
     "generation config it builds (generation_whisper.py); nothing our call passes"),
)


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: list[str]):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def quiet_libraries() -> None:
    """Install the LOG_FILTERS (idempotent) and hide the weight-loading progress bar.

    transformers' "Loading weights" bar takes under a second for the embedded models;
    downloads from the Hub keep their progress bars (huggingface_hub's are re-enabled).
    """
    by_logger: dict[str, list[str]] = {}
    for name, prefix, _why in LOG_FILTERS:
        by_logger.setdefault(name, []).append(prefix)
    for name, prefixes in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt: inputs will be cast.*")
    # The Trainer's checkpoints ask PEFT whether the base's vocabulary changed; for a base
    # named "embedded" (neither a folder nor a Hub id) PEFT cannot look its config up and
    # assumes it did not, which is true: our LoRA never adapts the embeddings.
    warnings.filterwarnings("ignore", message="Could not find a config file in .* will assume "
                            "that the vocabulary was not modified")
    # PEFT 0.21's PeftModel.__init__ (peft_model.py) reads transformers' old property name
    # `is_gradient_checkpointing` when an adapter is loaded; transformers 5.24 warns about
    # the name, not about anything the user chose (seen with `--adapter` on an fp32 base).
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                            category=FutureWarning)
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    enable_progress_bars()
