"""helpers.metrics: the mark-preserving normalizer and WER/CER, with hand-computed values."""
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from helpers.metrics import error_rates, normalize_text

pytestmark = pytest.mark.unit

HINDI = "क्या आप हिंदी बोलते हैं?"
MARATHI = "महाराष्ट्राची राजधानी मुंबई आहे."


@pytest.mark.parametrize("sentence", [HINDI, MARATHI])
def test_devanagari_words_stay_whole(sentence):
    words = sentence.rstrip("?.").split()
    assert normalize_text(sentence).split() == words
    marks = [c for c in sentence if unicodedata.category(c) in ("Mn", "Mc")]
    assert marks and all(c in normalize_text(sentence) for c in marks)


@pytest.mark.parametrize("sentence", [HINDI, MARATHI])
def test_basic_text_normalizer_splits_them(sentence):
    """The contrast: transformers' BasicTextNormalizer turns marks into spaces."""
    assert len(BasicTextNormalizer()(sentence).split()) > len(sentence.split())


@pytest.mark.parametrize("raw,expected", [
    ("नमस्ते। आप कैसे हैं॥", "नमस्ते आप कैसे हैं"),     # danda and double danda
    ("Hello, World!", "hello world"),
    ("Straße  ÉCOLE", "strasse école"),                 # casefold
    ("Don't stop", "dont stop"),                        # apostrophe removed, word kept
    ("rock\u2019n\u2019roll", "rocknroll"),
    ("well-known\t(maybe)\n\u00a0 \"quoted\"", "well known maybe quoted"),
    ("Room 101: $5 + 3%", "room 101 5 3"),             # digits kept, symbols gone
    ("क्\u200dष", "क्ष"),                                # zero-width joiner dropped
    ("e\u0301", "\u00e9"),                              # NFC
    ("  ...  ", ""),
])
def test_normalize_text_examples(raw, expected):
    assert normalize_text(raw) == expected


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_normalize_text_is_idempotent_and_tidy(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == once.strip() and "  " not in once


def test_error_rates_hand_computed():
    # "the cat sat" vs "the cat sat down": 1 insertion; "hello world" vs "hello": 1 deletion
    rates = error_rates(["the cat sat", "hello world"], ["the cat sat down", "hello"])
    assert rates == pytest.approx({"wer": 2 / 5, "raw_wer": 2 / 5,
                                   # chars: 11 + 11 = 22; " down" = 5 ins, " world" = 6 del
                                   "cer": 11 / 22, "raw_cer": 11 / 22})


def test_normalized_versus_raw():
    rates = error_rates(["Hello, World!"], ["hello world"])
    assert rates["wer"] == 0 and rates["cer"] == 0
    assert rates["raw_wer"] == 1.0                     # both tokens differ
    assert rates["raw_cer"] == pytest.approx(4 / 13)   # H/h, ",", W/w, "!"


def test_cer_single_substitution():
    assert error_rates(["abcd"], ["abed"])["cer"] == pytest.approx(1 / 4)


def test_hindi_wer_counts_whole_words():
    rates = error_rates([HINDI], ["क्या आप हिन्दी बोलते हैं"])
    assert rates["wer"] == pytest.approx(1 / 5)         # only हिंदी/हिन्दी differs
    assert rates["raw_wer"] == pytest.approx(2 / 5)     # and हैं? vs हैं


def test_empty_reference_counts_insertions():
    rates = error_rates(["a b", ""], ["a b", "extra words"])
    assert rates["wer"] == pytest.approx(2 / 2)         # 2 insertions over 2 reference words
    assert error_rates(["a b", "..."], ["a b", ""])["wer"] == 0


def test_errors():
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        error_rates(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty after normalization"):
        error_rates(["", " ?! "], ["x", ""])
    with pytest.raises(ValueError, match="empty after normalization"):
        error_rates([], [])


# ---------------------------------------------------------------- loops and insertions

LOOP = "Come and pre-roga-dinger-" + "dinger-" * 40


def test_a_repetition_loop_is_a_loop_and_sentences_are_not():
    from helpers.metrics import compression_ratio, is_loop

    assert is_loop(LOOP) and is_loop(LOOP, "Tom and Priya are getting married in June.")
    for sentence in ("Tom and Priya are getting married in June.", HINDI, MARATHI,
                     "मैं कल सुबह सात बजे दिल्ली से मुंबई जाने वाली रेलगाड़ी पकड़ूँगा और शाम तक वहाँ पहुँच जाऊँगा।"):
        assert compression_ratio(sentence) < 2 and not is_loop(sentence, sentence)


def test_a_transcript_far_longer_than_its_reference_is_a_loop():
    from helpers.metrics import is_loop

    reference = "yes"  # 3 characters: more than 2 x 3 + 10 = 16 characters loops
    assert not is_loop("yes, I think so.", reference)          # 16 characters
    assert is_loop("yes, I think so, yes.", reference)         # 21 characters, not compressible
    assert not is_loop("yes, I think so, yes.")                # no reference: the ratio alone


def test_word_insertions_count_jiwers_inserted_words():
    from helpers.metrics import word_insertions

    # "the cat sat" -> "the cat sat down": 1 insertion; "hello world" -> "hello": none
    assert word_insertions(["the cat sat", "hello world"], ["the cat sat down", "hello"]) == 1
    assert word_insertions(["dinger"], [LOOP]) > 40  # normalization splits the hyphens


# ---------------------------------------------------------------- scripts

# Hindi reference; the prediction mixes Urdu (Arabic script), English and Devanagari, as
# Whisper's base model does. Letters counted by hand (digits and "!" are not letters):
#   नमस्ते दुनिया: न म स ् त े + द ु न ि य ा = 12 Devanagari (vowel signs and virama count)
#   نمستے: ن م س ت ے = 5 Arabic; hello = 5 Latin; दुनिया = 6 Devanagari
MIXED_REFERENCE, MIXED_PREDICTION = "नमस्ते दुनिया", "نمستے hello दुनिया 42!"


def test_letter_scripts_of_mixed_text():
    from helpers.metrics import letter_scripts

    assert letter_scripts(MIXED_REFERENCE) == ["DEVANAGARI"] * 12
    assert letter_scripts(MIXED_PREDICTION) == ["ARABIC"] * 5 + ["LATIN"] * 5 + ["DEVANAGARI"] * 6
    assert letter_scripts("بَ") == ["ARABIC", "ARABIC"]          # beh + fatha (a mark)
    assert letter_scripts("क\u0301") == ["DEVANAGARI"] * 2        # a generic mark inherits
    assert letter_scripts("\u0301a") == ["LATIN"]                # ... and is skipped at the start
    assert letter_scripts("e\u0301") == ["LATIN"]                # NFC: one letter é
    assert letter_scripts("१२३ 42 ।?! \u200d") == []              # digits, danda, joiner: none


def test_dominant_script():
    from helpers.metrics import dominant_script

    assert dominant_script(MIXED_REFERENCE) == "DEVANAGARI"
    assert dominant_script(MIXED_PREDICTION) == "DEVANAGARI"     # 6 of 16
    assert dominant_script("Hello, दुनिया") == "DEVANAGARI"      # 6 against 5
    assert dominant_script("ab नम") == "LATIN"                   # 2 : 2, the first met wins
    assert dominant_script("Тест") == "CYRILLIC" and dominant_script("۱۲ ...") is None


def test_script_share_hand_computed():
    from helpers.metrics import script_share

    assert script_share([MIXED_REFERENCE], [MIXED_PREDICTION]) == pytest.approx(6 / 16)
    # English reference: हेलो = ह े ल ो (4 Devanagari), world = 5 Latin -> 5 of 9
    assert script_share(["Hello world"], ["हेलो world"]) == pytest.approx(5 / 9)
    # pooled over clips, letters not clips: (6 + 5) / (16 + 9); a reference without letters
    # ("१२३ ।") has no script, so its pair counts in neither total
    refs, preds = [MIXED_REFERENCE, "Hello world", "१२३ ।"], [MIXED_PREDICTION, "हेलो world", "abc"]
    assert script_share(refs, preds) == pytest.approx(11 / 25)
    assert script_share([MIXED_REFERENCE], [MIXED_REFERENCE]) == 1.0
    assert script_share([MIXED_REFERENCE], ["نمستے دنیا"]) == 0.0


def test_script_share_without_predicted_letters_is_none():
    from helpers.metrics import script_share

    assert script_share([MIXED_REFERENCE, "Hello"], ["", "42 ?"]) is None
    assert script_share([], []) is None
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        script_share(["a", "b"], ["a"])


def test_script_mix_shares_sum_to_one():
    from helpers.metrics import script_mix

    assert script_mix([MIXED_PREDICTION]) == pytest.approx(
        {"DEVANAGARI": 6 / 16, "ARABIC": 5 / 16, "LATIN": 5 / 16})
    assert list(script_mix([MIXED_PREDICTION])) == ["DEVANAGARI", "ARABIC", "LATIN"]
    assert script_mix(["", "?"]) == {}


def test_compare_predictions_and_table_carry_the_script_share():
    from helpers.evaluate.scoring import compare_predictions
    from helpers.evaluate.tables import comparison_table, script_table

    rows = [{"path": "a.mp3", "reference": MIXED_REFERENCE, "base": MIXED_PREDICTION,
             "finetuned": MIXED_REFERENCE},
            {"path": "b.mp3", "reference": "Hello world", "base": "हेलो world", "finetuned": ""}]
    metrics = compare_predictions(rows)
    assert metrics["base_script_share"] == pytest.approx(11 / 25, abs=1e-4)   # rounded to 4 places
    assert metrics["finetuned_script_share"] == 1.0                          # 12 of 12
    table = comparison_table(metrics)
    assert table.loc["base", "script share"] == pytest.approx(44.0)
    assert table.loc["finetuned", "script share"] == 100.0
    mix = script_table(rows)
    assert mix.loc["ARABIC", "base"] == pytest.approx(100 * 5 / 25, abs=0.05)
    assert mix.loc["ARABIC", "finetuned"] == 0 and mix.loc["DEVANAGARI", "reference"] > 50
