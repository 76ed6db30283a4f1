"""Word and character error rates, raw and normalized, computed locally with jiwer; and the
share of transcribed letters written in the reference's script.

`normalize_text` keeps combining marks: Devanagari vowel signs and viramas are marks
(Unicode categories Mn/Mc), and transformers' `BasicTextNormalizer` turns them into spaces,
which splits every Hindi or Marathi word into fragments and makes "normalized WER" meaningless
there. Here only punctuation, symbols and separators become spaces.
"""

import unicodedata
import zlib
from collections import Counter

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

    Either the decoder ran into the transcript's token cap (a `Transcript` of
    helpers.transcribe.decode whose `capped` is set: no speech is that dense), or its
    compression ratio is above LOOP_COMPRESSION_RATIO, or (with a reference) it is longer
    than 2 x the reference + LOOP_EXTRA_CHARS characters. "dinger-dinger-dinger-…" is all
    three; a correct transcript is none.
    """
    if getattr(prediction, "capped", False):
        return True
    if compression_ratio(prediction) > LOOP_COMPRESSION_RATIO:
        return True
    return reference is not None and len(prediction) > 2 * len(reference) + LOOP_EXTRA_CHARS


def word_insertions(references, predictions) -> int:
    """Inserted words (jiwer's count, on normalize_text-ed text) over all pairs."""
    normalized_refs = [normalize_text(text) for text in references]
    normalized_preds = [normalize_text(text) for text in predictions]
    return jiwer.process_words(normalized_refs, normalized_preds).insertions


# ---------------------------------------------------------------- scripts

INHERITED = "COMBINING"  # marks named "COMBINING ..." belong to the letter they sit on


def letter_scripts(text: str) -> list[str]:
    """The Unicode script of each letter and combining mark of `text` (NFC), in order.

    Letters and marks are Unicode categories L* and M*; digits, punctuation (the danda too),
    spaces and joiners are not counted. A script is the first word of the character's
    Unicode name: "DEVANAGARI" for क and its vowel signs, "ARABIC" for Urdu's letters
    (ں, ہ, ے), "LATIN", "CYRILLIC", "CJK" ... A generic combining mark ("COMBINING ACUTE
    ACCENT") takes the script of the letter before it, and is skipped at the start.
    Example: "नमस्ते, hi!" -> 6 x "DEVANAGARI" + 2 x "LATIN".
    """
    scripts = []
    for char in unicodedata.normalize("NFC", text):
        if unicodedata.category(char)[0] not in "LM":
            continue
        script = unicodedata.name(char, "").split(" ", 1)[0]
        if script == INHERITED:
            script = scripts[-1] if scripts else ""
        if script:
            scripts.append(script)
    return scripts


def dominant_script(text: str) -> str | None:
    """The script most of `text`'s letters and marks are in (`letter_scripts`); None when
    it has none. A tie goes to the script met first in the text."""
    counts = Counter(letter_scripts(text))
    return counts.most_common(1)[0][0] if counts else None


def script_counts(references, predictions) -> tuple[int, int]:
    """(letters of the predictions in their reference's dominant script, all their letters).

    Pairs whose reference has no letters (no script to be in) are left out of both counts.
    """
    matching = total = 0
    for reference, prediction in zip(references, predictions, strict=True):
        expected = dominant_script(reference)
        if expected is None:
            continue
        scripts = letter_scripts(prediction)
        matching += sum(script == expected for script in scripts)
        total += len(scripts)
    return matching, total


def script_share(references, predictions) -> float | None:
    """Share of the predictions' letters (and marks) written in their reference's dominant
    script, over all pairs: a fraction, 1.0 when every letter is in the right script.

    Whisper's base model asked for Hindi writes much of it in Urdu (Arabic script): WER and
    CER then count every word wrong without saying why; this says it. None when the
    predictions hold no letter at all (every transcript empty, or digits and punctuation
    only): no letter was written, so no share of them exists; 0.0 would claim they were
    all in the wrong script. Raises ValueError if the lists differ in length.
    Example: reference "नमस्ते", prediction "नम hello" -> 2 of 7 letters -> 2/7.
    """
    references, predictions = list(references), list(predictions)
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions; "
                         "they must pair up one to one.")
    matching, total = script_counts(references, predictions)
    return matching / total if total else None


def script_mix(texts) -> dict[str, float]:
    """{script: share of all letters in `texts`}, largest first (`letter_scripts`)."""
    counts = Counter(script for text in texts for script in letter_scripts(text))
    total = sum(counts.values())
    return {script: count / total for script, count in counts.most_common()}
