"""A self-contained HTML report (figures embedded as base64 PNG, CSS inline) and metrics.json.

The report must open anywhere, from a laptop to a thesis appendix: it loads nothing from the
network (no scripts, fonts or style sheets) and every image lives inside the file.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stampnet.jsonable import json_ready

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1.5em; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #3a6ea5; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; color: #24476e; border-bottom: 1px solid #d5dbe3; }
h3 { font-size: 1.08em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #cfd6df; padding: .32em .7em; text-align: left; vertical-align: top; }
th { background: #eef2f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.anchor td { background: #fbf6e9; font-style: italic; }
caption { caption-side: bottom; text-align: left; font-size: .85em; color: #5b6573;
          padding-top: .4em; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ec; }
figcaption { font-size: .88em; color: #5b6573; }
.note { background: #fbf6e9; border-left: 4px solid #d9a520; padding: .5em .9em; }
.meta { color: #5b6573; font-size: .9em; }
code { background: #f2f4f7; padding: 0 .25em; }
"""


def write_metrics(metrics: Mapping, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(metrics), indent=2, allow_nan=False) + "\n")
    return path


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _cell(value) -> str:
    opening = '<td class="num">' if _is_number(value) else "<td>"
    return f"{opening}{html.escape(format_value(value))}</td>"


def format_value(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float | np.floating):
        return "–" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)


class Report:
    """An HTML document built section by section; ``render()`` returns one self-contained page.

    Args:
        title: the page title and top heading.

    Example:
        >>> report = Report("stamp_classifier-20250101")
        >>> report.heading("Confusion matrix")
        >>> report.image(png_bytes, "confusion matrix", caption="test split")
        >>> report.write("runs/x/report.html")
    """

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css_class: str | None = None) -> None:
        attribute = f' class="{css_class}"' if css_class else ""
        self._parts.append(f"<p{attribute}>{html.escape(text)}</p>")

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence],
        *,
        caption: str | None = None,
        row_classes: Sequence[str | None] | None = None,
    ) -> None:
        lines = ["<table>"]
        if caption:
            lines.append(f"<caption>{html.escape(caption)}</caption>")
        lines.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
        for index, row in enumerate(rows):
            css = row_classes[index] if row_classes else None
            attribute = f' class="{css}"' if css else ""
            cells = "".join(_cell(cell) for cell in row)
            lines.append(f"<tr{attribute}>{cells}</tr>")
        lines.append("</table>")
        self._parts.append("\n".join(lines))

    def image(self, png: bytes, alt: str, caption: str | None = None) -> None:
        encoded = base64.b64encode(png).decode("ascii")
        figure = f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'
        if caption:
            figure += f"<figcaption>{html.escape(caption)}</figcaption>"
        self._parts.append(figure + "</figure>")

    def render(self) -> str:
        body = "\n".join(self._parts)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(self.title)}</h1>\n{body}\n</body>\n</html>\n"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path


def classification_table(metrics: Mapping) -> tuple[list[str], list[list]]:
    """Header and rows of the per-class table of ``metrics.classification_metrics``."""
    header = ["class", "precision", "recall", "F1", "ROC AUC", "avg. precision", "support"]
    rows = [
        [name, c["precision"], c["recall"], c["f1"], c["roc_auc"], c["average_precision"],
         c["support"]]
        for name, c in metrics["per_class"].items()
    ]  # fmt: skip
    return header, rows
