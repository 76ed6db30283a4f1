"""The data collator for Whisper fine-tuning (one copy, fixed; see transformers issue 29973).

The collator pasted through most Whisper notebooks strips a leading `bos_token_id`
(<|endoftext|>) from the labels, but Whisper labels start with `decoder_start_token_id`
(<|startoftranscript|>), so the strip never fired and the model was taught to predict
<|startoftranscript|> after itself. Here the check uses `decoder_start_token_id`.
"""

from dataclasses import dataclass
from typing import Any

import torch

from helpers.data.features import padded_features, training_padding

IGNORE_INDEX = -100  # label value the cross-entropy loss skips
CLIP_COUNT_KEY = "clip_count"  # with count_clips: the batch's training clips (packed rows hold several)


@dataclass
class SpeechSeq2SeqCollator:
    """Batch rows of features and label ids for training.

    Rows carry their features as helpers.data.features stores them ("mel_frames" + "mel_pad",
    rebuilt to n_mels x 3000 by padded_features) or whole ("input_features": n_mels x frames).
    processor: the WhisperProcessor (its feature_extractor and tokenizer pad the batch).
    decoder_start_token_id: model.config.decoder_start_token_id (<|startoftranscript|>);
        the model prepends it to the decoder inputs itself, so a leading copy is removed
        from the labels when every row starts with it.
    zero_padding_share, seed: compact rows are padded to 3000 frames with zeros (faster-whisper's
        and OpenAI's way) for a seeded share of examples, with silence (transformers' and
        whisper.cpp's) for the rest (helpers.data.features.training_padding); 0: all silence.
    count_clips: also return "clip_count", the number of training clips in the batch (a
        plain int: a packed row's "clip_count", 1 for a row of one clip), which
        helpers.train.trainer.SpeechTrainer takes out before the model sees the batch.
    Returns {"input_features": float tensor (batch, n_mels, frames), "labels": long tensor
    (batch, longest label) with padding set to -100}. Other keys of the rows are ignored.
    """

    processor: Any
    decoder_start_token_id: int
    zero_padding_share: float = 0.0
    seed: int = 0
    count_clips: bool = False

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.processor.feature_extractor.pad(
            [{"input_features": self.features(row)} for row in rows], return_tensors="pt")
        batch["labels"] = self.pad_labels([row["labels"] for row in rows])
        if self.count_clips:
            batch[CLIP_COUNT_KEY] = sum(int(row.get(CLIP_COUNT_KEY, 1)) for row in rows)
        return batch

    def features(self, row: dict):
        """One row's n_mels x frames features: stored whole, or rebuilt from the compact form."""
        if "mel_frames" in row:
            padding = training_padding(row["labels"], self.seed, self.zero_padding_share)
            return padded_features(row["mel_frames"], row["mel_pad"], padding,
                                   self.processor.feature_extractor.nb_max_frames)
        if "input_features" in row:
            return row["input_features"]
        raise KeyError(f"a row has neither mel_frames/mel_pad nor input_features (keys: "
                       f"{sorted(row)}); prepare rows with helpers.data.features.prepare_features.")

    def pad_labels(self, labels: list) -> torch.Tensor:
        """Right-pad label id lists, mask the padding with -100, strip a shared start token."""
        tokenizer = self.processor.tokenizer
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token "
                             "(Whisper uses <|endoftext|>) before collating.")
        padded = tokenizer.pad({"input_ids": [list(ids) for ids in labels]},
                               padding_side="right", return_tensors="pt")
        ids = padded["input_ids"].masked_fill(padded["attention_mask"].ne(1), IGNORE_INDEX)
        if ids.shape[1] and bool((ids[:, 0] == self.decoder_start_token_id).all()):
            ids = ids[:, 1:]
        return ids
