"""Word and character error rates, raw and normalized, computed locally with jiwer.

`normalize_text` keeps combining marks: Devanagari vowel signs and viramas are marks
(Unicode categories Mn/Mc), and transformers' `BasicTextNormalizer` turns them into spaces,
which splits every Hindi or Marathi word into fragments and makes "normalized WER" meaningless
there. Here only punctuation, symbols and separators become spaces.
"""
import unicodedata
import zlib

import jiwer

APOSTROPHES = "'\u2019\u02bc"  # removed without a space: "don't" -> "dont" stays one word
# A transcript is a repetition loop when zlib shrinks its UTF-8 bytes more than this
# (OpenAI's decoder uses 2.4 on text for its fallback rule; ordinary sentences stay under
# 1.6) ...
LOOP_COMPRESSION_RATIO = 2.4
# ... or when it is longer than twice its reference plus this many characters.
LOOP_EXTRA_CHARS = 10


def _char_class(char: str) -> str:
    """"keep", "drop" or "space" for one (casefolded) character."""
    if char in APOSTROPHES:
        return "drop"
    category = unicodedata.category(char)
    if category[0] in "PSZ" or category == "Cc":  # punctuation (incl. danda), symbols, spaces
        return "space"
    if category in ("Cf", "Cs", "Co", "Cn"):  # zero-width joiners, invalid code points
        return "drop"
    return "keep"  # letters, numbers and combining marks (Mn, Mc, Me)


def normalize_text(text: str) -> str:
    """Normalize a transcript for scoring: NFC, casefold, punctuation/symbols -> spaces.

    Keeps letters, digits and combining marks (so Devanagari words stay whole), removes
    apostrophes and zero-width characters, and collapses runs of whitespace. Example:
    "क्या आप हिंदी बोलते हैं?" -> "क्या आप हिंदी बोलते हैं"; "Hello, World!" -> "hello world".
    """
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    pieces = []
    for char in text:
        kind = _char_class(char)
        if kind != "drop":
            pieces.append(" " if kind == "space" else char)
    return " ".join("".join(pieces).split())


def error_rates(references, predictions) -> dict[str, float]:
    """Corpus-level error rates of `predictions` against `references` (lists of str).

    Returns fractions (0.25 = 25%): "wer" and "cer" on `normalize_text`-ed text, "raw_wer"
    and "raw_cer" on the text as given (jiwer only strips the ends). An empty reference
    counts: every predicted word there is an insertion. Raises ValueError if the lists
    differ in length or if every reference is empty after normalization (no rate exists).
    """
    references, predictions = list(references), list(predictions)
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions; "
                         "they must pair up one to one.")
    normalized_refs = [normalize_text(text) for text in references]
    if not any(normalized_refs):
        raise ValueError(f"all {len(references)} references are empty after normalization; "
                         "an error rate needs at least one reference word.")
    normalized_preds = [normalize_text(text) for text in predictions]
    return {"wer": jiwer.wer(normalized_refs, normalized_preds),
            "cer": jiwer.cer(normalized_refs, normalized_preds),
            "raw_wer": jiwer.wer(references, predictions),
            "raw_cer": jiwer.cer(references, predictions)}


def compression_ratio(text: str) -> float:
    """len(UTF-8 bytes) / len(zlib-compressed bytes): about 1 for prose, high for loops."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def is_loop(prediction: str, reference: str | None = None) -> bool:
    """True when a transcript is a repetition loop (the decoder repeating until its limit).

    Either its compression ratio is above LOOP_COMPRESSION_RATIO, or (with a reference) it
    is longer than 2 x the reference + LOOP_EXTRA_CHARS characters. "dinger-dinger-dinger-…"
    is both; a correct transcript is neither.
    """
    if compression_ratio(prediction) > LOOP_COMPRESSION_RATIO:
        return True
    return reference is not None and len(prediction) > 2 * len(reference) + LOOP_EXTRA_CHARS


def word_insertions(references, predictions) -> int:
    """Inserted words (jiwer's count, on normalize_text-ed text) over all pairs."""
    normalized_refs = [normalize_text(text) for text in references]
    normalized_preds = [normalize_text(text) for text in predictions]
    return jiwer.process_words(normalized_refs, normalized_preds).insertions
