"""Corpora fetched by name: Common Voice 27 layout, `mdc:` through the Data Collective's client
(a stand-in serving a local archive), and `fleurs:` from FLEURS-schema Parquet files."""
import csv
import sys
import tarfile
from pathlib import Path

import pytest

from fixtures.colab_corpora import (CV27_COLUMNS, CV27_EXTRA_FILES, MDC_RELEASE, write_cv27_locale,
                                    write_fleurs_parquet, write_mdc_archive)
from helpers.data.fetch import CorpusAccessError, fetch_mdc, unpack_atomic
from helpers.data.corpora import load_fleurs
from helpers.data.corpora import corpus_kind, load_common_voice, load_corpus
from helpers.data.filter import filter_corpus

pytestmark = pytest.mark.unit

STANDIN = Path(__file__).resolve().parent / "colab_standin"
FAKE_KEY = "mdc_FakeKeyForTests_0123456789abcdef"
DATASET_ID = "cmfakecv27en00000000000000"


def tsv_rows(path) -> int:
    with open(path, encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)) - 1


@pytest.fixture
def tokenizer():
    from helpers.model.load import load_processor

    return load_processor("embedded").tokenizer


# ------------------------------------------------------------- Common Voice 27.0 layout
def test_common_voice_27_layout_loads_with_every_row_accounted_for(tmp_path, tokenizer):
    locale = write_cv27_locale(tmp_path / MDC_RELEASE)
    assert all((locale / name).is_file() for name in CV27_EXTRA_FILES)
    header = (locale / "train.tsv").read_text().splitlines()[0].split("\t")
    assert header == CV27_COLUMNS and "sentence_id" in header and "sentence_domain" in header
    for split in ("train", "dev", "test", "validated"):
        rows = tsv_rows(locale / f"{split}.tsv")
        dataset = load_common_voice(locale, split)
        assert len(dataset) == rows > 0
        assert dataset.column_names[:1] == ["audio"] and set(CV27_COLUMNS) <= set(dataset.column_names)
        kept, report = filter_corpus(dataset, tokenizer, name=split)
        assert report["rows"] == rows == report["kept"] + sum(report["dropped"].values())
        assert report["kept"] == rows  # cv-mini's clips are all good: nothing lost to the layout
    train = load_common_voice(locale, "train")
    assert any("," in domain for domain in train["sentence_domain"])  # comma domains stay one field
    assert load_common_voice(tmp_path / MDC_RELEASE, "train")["path"] == train["path"]  # release root
    # The extra files are neither splits nor locales, and a missing split lists real TSVs.
    with pytest.raises(FileNotFoundError, match="clip_durations.tsv"):
        load_common_voice(locale, "nonesuch")


# ------------------------------------------------------------- mdc: through the client
@pytest.fixture
def mdc(tmp_path, monkeypatch):
    """The stand-in client importable, serving one CV 27 archive; returns a namespace."""
    archives = tmp_path / "mdc-server" / DATASET_ID
    archives.mkdir(parents=True)
    write_mdc_archive(archives)
    log = tmp_path / "downloads.log"
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setenv("FAKE_MDC_ARCHIVES", str(tmp_path / "mdc-server"))
    monkeypatch.setenv("FAKE_MDC_KEY", FAKE_KEY)
    monkeypatch.setenv("FAKE_MDC_LOG", str(log))
    monkeypatch.setenv("FAKE_MDC_TERMS_REFUSED", "cmtermsnotaccepted")
    monkeypatch.setenv("WHISPER_LORA_CORPORA", str(tmp_path / "corpora"))
    monkeypatch.setenv("MDC_API_KEY", "")  # restored (unset) after the test, even if code sets it
    yield type("Mdc", (), {"root": tmp_path / "corpora", "log": log})
    for name in [n for n in sys.modules if n == "datacollective" or n.startswith("datacollective.")]:
        del sys.modules[name]


def test_mdc_downloads_once_unpacks_and_loads(mdc, monkeypatch, capsys):
    monkeypatch.setenv("MDC_API_KEY", FAKE_KEY)
    source = f"mdc:{DATASET_ID}"
    assert corpus_kind(source) == "mdc"
    locale = fetch_mdc(source)
    assert locale == mdc.root / f"mdc-{DATASET_ID}" / MDC_RELEASE / "en"
    assert len(load_corpus(source, "train")) == 16 and len(load_corpus(source, "dev")) == 4
    monkeypatch.delenv("MDC_API_KEY")  # unpacked once: no key, no client call needed again
    assert len(load_corpus(source, "test")) == 8
    assert mdc.log.read_text().splitlines() == [DATASET_ID]
    assert not list((mdc.root / "downloads").iterdir())  # the archive is gone once unpacked
    assert sorted(p.name for p in mdc.root.iterdir()) == ["downloads", f"mdc-{DATASET_ID}"]
    assert FAKE_KEY not in capsys.readouterr().out


@pytest.mark.parametrize("case, expected", [
    ("no key", "No Mozilla Data Collective API key.*MDC_API_KEY.*Notebook access"),
    ("wrong key", "refused the API key in MDC_API_KEY"),
    ("wrong id", "no dataset 'cmnosuchdataset'.*datasets/<id>"),
    ("terms", "refused access to 'cmtermsnotaccepted'.*accept the dataset's terms"),
])
def test_mdc_errors_say_what_is_missing_and_never_show_the_key(mdc, monkeypatch, capsys, case, expected):
    dataset = {"wrong id": "cmnosuchdataset", "terms": "cmtermsnotaccepted"}.get(case, DATASET_ID)
    if case == "terms":
        (mdc.root.parent / "mdc-server" / dataset).symlink_to(mdc.root.parent / "mdc-server" / DATASET_ID)
    if case != "no key":
        monkeypatch.setenv("MDC_API_KEY", "mdc_not_the_key_0000" if case == "wrong key" else FAKE_KEY)
    with pytest.raises(CorpusAccessError, match=expected) as error:
        fetch_mdc(f"mdc:{dataset}")
    assert FAKE_KEY not in str(error.value) and "mdc_not_the_key" not in str(error.value)
    assert FAKE_KEY not in "".join(capsys.readouterr())
    assert not (mdc.root / f"mdc-{dataset}").exists()


def test_an_interrupted_unpack_leaves_nothing_a_later_run_trusts(mdc, monkeypatch):
    monkeypatch.setenv("MDC_API_KEY", FAKE_KEY)
    target = mdc.root / f"mdc-{DATASET_ID}"
    # A run killed with SIGKILL while unpacking left a staging folder: it is not used.
    staging = mdc.root / f".mdc-{DATASET_ID}-k1ll3d"  # helpers.files.staging_dir's name
    (staging / "junk").mkdir(parents=True)
    # A run interrupted (KeyboardInterrupt, Colab's stop button) halfway through the members.
    original, calls = tarfile.TarFile.extract, []

    def extract_then_stop(self, member, *args, **kwargs):
        calls.append(member.name)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return original(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", extract_then_stop)
    with pytest.raises(KeyboardInterrupt):
        fetch_mdc(f"mdc:{DATASET_ID}")
    assert not target.exists() and not staging.exists()
    assert not list(mdc.root.glob(f".mdc-{DATASET_ID}-*"))  # the interrupted one is gone too
    monkeypatch.setattr(tarfile.TarFile, "extract", original)
    assert fetch_mdc(f"mdc:{DATASET_ID}") == target / MDC_RELEASE / "en"
    assert len(load_common_voice(target / MDC_RELEASE / "en", "train")) == 16


def test_a_damaged_archive_is_deleted_and_nothing_is_unpacked(tmp_path):
    archive = write_mdc_archive(tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # cut short, like a download that died
    with pytest.raises(CorpusAccessError, match="damaged.*deleted.*again"):
        unpack_atomic(archive, tmp_path / "unpacked")
    assert not archive.exists() and not (tmp_path / "unpacked").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ fleurs:
def test_fleurs_parquet_loads_with_our_audio_and_split_names(tmp_path, monkeypatch):
    from helpers.audio import load_audio

    monkeypatch.setenv("WHISPER_LORA_FLEURS_URL", str(write_fleurs_parquet(tmp_path / "fleurs")))
    monkeypatch.setenv("WHISPER_LORA_CORPORA", str(tmp_path / "corpora"))
    assert corpus_kind("fleurs:en_us") == "fleurs"
    train = load_corpus("fleurs:en_us", "train")
    assert len(train) == 16 and train.column_names[:2] == ["audio", "sentence"]
    assert train["sentence"][0] == train["sentence"][0].lower()  # "transcription" by default
    raw = load_fleurs("fleurs:en_us", "train", text_column="raw_transcription")
    assert raw["sentence"][0] != train["sentence"][0] and raw["sentence"][0][0].isupper()
    dev = load_corpus("fleurs:en_us", "dev")  # our "dev" is FLEURS' "validation"
    assert len(dev) == 4 and len(load_corpus("fleurs:en_us", "test")) == 8
    clip = Path(dev["audio"][0])
    assert clip.parent == tmp_path / "corpora" / "fleurs" / "en_us" / "validation"
    assert len(load_audio(clip)) == int(dev["num_samples"][0])  # 16 kHz WAV bytes, decoded by us
    with pytest.raises(FileNotFoundError, match="FLEURS configs are a language and region code"):
        load_corpus("fleurs:xx_yy", "train")
    with pytest.raises(ValueError, match="names no dataset"):
        load_corpus("fleurs:", "train")
