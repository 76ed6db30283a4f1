"""An ipywidgets explorer: pick a test clip, play it, compare reference, base and fine-tuned."""
from __future__ import annotations

import difflib
import html
from pathlib import Path

from helpers.metrics import normalize_text


def word_diff_html(reference: str, hypothesis: str) -> str:
    """HTML of hypothesis with words differing from the reference marked.

    Compared on normalized words: substituted/inserted words are shown green and
    underlined, missing reference words red and struck through.
    """
    ref_words, hyp_words = normalize_text(reference).split(), normalize_text(hypothesis).split()
    parts = []
    matcher = difflib.SequenceMatcher(a=ref_words, b=hyp_words, autojunk=False)
    for tag, ref_start, ref_end, hyp_start, hyp_end in matcher.get_opcodes():
        if tag == "equal":
            parts.append(html.escape(" ".join(hyp_words[hyp_start:hyp_end])))
            continue
        if ref_end > ref_start:
            missing = html.escape(" ".join(ref_words[ref_start:ref_end]))
            parts.append(f'<del style="color:#c44e52">{missing}</del>')
        if hyp_end > hyp_start:
            added = html.escape(" ".join(hyp_words[hyp_start:hyp_end]))
            parts.append(f'<ins style="color:#2a9d3f">{added}</ins>')
    return " ".join(parts)


class TranscriptExplorer:
    """A dropdown of clips, an audio player and a table of reference/base/fine-tuned text.

    predictions: list of {"path", "reference", "base", "finetuned"} (predictions.jsonl rows).
    `select(i)` shows clip i; `texts` holds what is shown, for tests and scripts.
    """

    def __init__(self, predictions: list[dict]):
        import ipywidgets as widgets

        if not predictions:
            raise ValueError("no predictions to explore: run notebook 05 first")
        self.predictions = predictions
        labels = [(f"{i:3d}  {Path(row['path']).name}  {row['reference'][:50]}", i)
                  for i, row in enumerate(predictions)]
        self.picker = widgets.Dropdown(options=labels, value=0, description="clip",
                                       layout=widgets.Layout(width="90%"))
        self.player = widgets.Audio(autoplay=False, loop=False)
        self.table = widgets.HTML()
        self.texts: dict[str, str] = {}
        self.picker.observe(lambda change: self.select(change["new"]), names="value")
        self.widget = widgets.VBox([self.picker, self.player, self.table])
        self.select(0)

    def select(self, index: int) -> dict[str, str]:
        """Show clip `index`; returns the texts shown (reference, base, finetuned)."""
        row = self.predictions[index]
        if self.picker.value != index:
            self.picker.value = index  # triggers select again through observe
            return self.texts
        self.player.value = Path(row["path"]).read_bytes()
        self.player.format = Path(row["path"]).suffix.lstrip(".").lower() or "wav"
        self.texts = {key: row[key] for key in ("reference", "base", "finetuned")}
        self.table.value = self._table_html(row)
        return self.texts

    @staticmethod
    def _table_html(row: dict) -> str:
        """The reference and both hypotheses with their differences marked."""
        cells = [("reference", html.escape(row["reference"])),
                 ("base", word_diff_html(row["reference"], row["base"])),
                 ("fine-tuned", word_diff_html(row["reference"], row["finetuned"]))]
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{name}</th>"
                       f"<td style='text-align:left'>{text}</td></tr>" for name, text in cells)
        return f"<table>{body}</table>"

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
