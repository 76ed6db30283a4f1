"""`python -m helpers.transcribe --adapter DIR FOLDER` on a folder mixing English and Hindi
cv-mini clips, with the multilingual base (embedded-base) and a seeded Hindi adapter: each
clip is decoded in its own language, the adapter on the Hindi ones only, and the texts are
what the same model gives in this process decoded that way. (The trained demo adapter,
`make demo-hindi`, is checked the same way by hand: docs/routing.md.)"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = [ROOT / "data/cv-mini/en/clips" / name
           for name in ("common_voice_en_39721904.mp3", "common_voice_en_38496839.mp3")]
# Hindi clips the base (fp32, adapter off) identifies as Hindi: routed at stage one, whatever
# a random adapter would say at stage two (docs/routing.md measures the rest)
HINDI = [ROOT / "data/cv-mini/hi/clips" / name
         for name in ("common_voice_hi_39230766.mp3", "common_voice_hi_39109147.mp3")]
B_STD = 0.02  # the seeded adapter changes the output a little and keeps it text


@pytest.fixture(scope="module")
def hindi_adapter(tmp_path_factory):
    """A seeded LoRA adapter (r=4) on embedded-base, recorded as trained on Hindi."""
    from fixtures.tiny_runs import seeded_hindi_adapter

    return seeded_hindi_adapter("embedded-base", tmp_path_factory.mktemp("hindi") / "adapter", B_STD)


def test_a_mixed_folder_is_decoded_clip_by_clip_in_its_own_language(hindi_adapter, tmp_path):
    from helpers.audio import load_audio
    from helpers.transcribe.decode import transcribe_arrays
    from helpers.transcribe.routing import Route, decoding_as, load_routed

    folder = tmp_path / "mixed"
    folder.mkdir()
    for clip in ENGLISH + HINDI:
        (folder / clip.name).write_bytes(clip.read_bytes())
    result = subprocess.run([sys.executable, "-m", "helpers.transcribe", "--adapter",
                             str(hindi_adapter), str(folder)], cwd=ROOT, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    assert "routing: the adapter decodes the speech the base (adapter off) identifies as hi, ur" \
        in result.stderr
    lines = {Path(line["path"]).name: line for line in map(json.loads, result.stdout.splitlines())}
    assert set(lines) == {clip.name for clip in ENGLISH + HINDI}
    for clips, route in ((ENGLISH, Route("en", False)), (HINDI, Route("hi", True))):
        assert [(lines[c.name]["language"], lines[c.name]["adapter"]) for c in clips] == \
            [(route.language, route.adapter)] * len(clips)
    # The same texts in this process: each group decoded together, as the command does.
    model, processor, router = load_routed(None, str(hindi_adapter), None, "fp32")
    assert router.routing and router.primary == "hi"
    for clips, route in ((ENGLISH, Route("en", False)), (HINDI, Route("hi", True))):
        with decoding_as(model, route):
            texts = transcribe_arrays(model, processor, [load_audio(c) for c in clips])
        assert [lines[c.name]["text"] for c in clips] == texts
    assert all(len(lines[c.name]["text"].split()) >= 3 for c in ENGLISH)
    with decoding_as(model, Route("hi", False)):  # the adapter changed the Hindi transcripts
        base = transcribe_arrays(model, processor, [load_audio(c) for c in HINDI])
    assert base != [lines[c.name]["text"] for c in HINDI]
