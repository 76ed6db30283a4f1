"""helpers.data.replay: REPLAY_SHARE's count, its checks, and replay rows in notebook 01's
features with their own language token (on cv-mini: Hindi clips, English replay)."""
import pytest

from helpers.config import make_config
from helpers.data import replay
from helpers.model.load import EMBEDDED_BASE, load_processor

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def hindi_tokenizer():
    return load_processor(EMBEDDED_BASE, language="hindi").tokenizer


@pytest.mark.parametrize("clips,share,count", [(240, 0.0, 0), (240, 0.1, 27), (240, 0.25, 80),
                                               (8, 0.25, 3), (9, 0.5, 9)])
def test_replay_count_makes_the_share_of_the_whole(clips, share, count):
    assert replay.replay_count(clips, share) == count
    if count:
        assert count / (clips + count) == pytest.approx(share, abs=0.5 / (clips + count))


@pytest.mark.parametrize("share", [-0.1, 1.0, 1.5])
def test_a_share_outside_0_to_1_is_refused(share):
    with pytest.raises(ValueError, match="replay_share must be at least 0 and under 1"):
        replay.replay_count(10, share)


def test_replay_settings_that_cannot_work_say_what_to_set():
    hindi = make_config("embedded-hindi", replay_share=0.1)
    replay.check_replay(hindi, multilingual=True)  # the preset's English corpus: fine
    replay.check_replay(make_config("embedded"), multilingual=False)  # share 0: nothing asked
    with pytest.raises(ValueError, match="needs a multilingual model"):
        replay.check_replay(make_config("embedded", replay_share=0.1), multilingual=False)
    with pytest.raises(ValueError, match="REPLAY_CORPUS"):
        replay.check_replay(make_config("embedded-hindi", replay_share=0.1, replay_corpus=""),
                            multilingual=True)
    with pytest.raises(ValueError, match="the run's own language"):
        replay.check_replay(make_config("embedded-hindi", replay_share=0.1, replay_language="hi"),
                            multilingual=True)


def test_relabel_language_swaps_only_the_language_token(hindi_tokenizer):
    labels = hindi_tokenizer(["नमस्ते", "hello there"]).input_ids
    out = replay.relabel_language(labels, ["", "english"], hindi_tokenizer)
    english = hindi_tokenizer.convert_tokens_to_ids("<|en|>")
    assert out[0] == labels[0]
    assert out[1] == [labels[1][0], english, *labels[1][2:]]
    assert replay.relabel_language(labels, None, hindi_tokenizer) is labels


@pytest.mark.integration  # filters cv-mini/en train and makes features of 11 clips (~15 s)
def test_notebook_01_adds_english_replay_rows_with_the_english_token(tmp_path):
    from helpers.config import start_run
    from helpers.data.prepare import prepare_run_data
    from datasets import load_from_disk

    run, config = start_run("replay", "embedded-hindi", tmp_path, max_train_clips=8,  # one clip a
                            max_test_clips=2, replay_share=0.25, pack=False)  # sample (packed: test_packing)
    processor = load_processor(config.model, language=config.language)
    reports = prepare_run_data(config, run, processor)
    assert reports["replay"]["replay_wanted"] == reports["replay"]["replay_used"] == 3
    rows = load_from_disk(str(run.features_dir("train")))
    assert sorted(rows["language"]) == [""] * 8 + ["english"] * 3
    hindi, english = (processor.tokenizer.convert_tokens_to_ids(t) for t in ("<|hi|>", "<|en|>"))
    for row in rows:
        expected = english if row["language"] else hindi
        assert row["labels"][1] == expected
        assert ("/cv-mini/en/" in row["audio"]) == bool(row["language"])
        assert processor.tokenizer.decode(row["labels"], skip_special_tokens=True) == row["sentence"]
