"""One self-contained HTML page: every image embedded as a base64 data URI (GIF included), no
scripts, no external resources, so it opens in any browser and can be mailed as one file."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 10px; text-align: left; font-size: 0.92em; }
th { background: #f4f4f4; }
.figure { overflow-x: auto; margin: 8px 0; }
.figure img { image-rendering: pixelated; max-width: none; }
.note { color: #555; font-size: 0.92em; }
"""


def data_uri(path: str | Path) -> str:
    path = Path(path)
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@dataclass
class Section:
    title: str
    text: str = ""  # plain text, escaped
    images: list[tuple[Path, str]] = field(default_factory=list)  # (file, alt text)
    table: list[tuple[str, Any]] = field(default_factory=list)  # (name, value) rows
    notes: list[str] = field(default_factory=list)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.3f}"
    if v is None:
        return "n/a"
    return str(v)


def render(title: str, sections: list[Section], subtitle: str = "") -> str:
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f"<p class=\"note\">{html.escape(subtitle)}</p>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        if section.table:
            rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_value(v))}</td></tr>"
                           for k, v in section.table)
            parts.append(f"<table>{rows}</table>")
        for path, alt in section.images:
            parts.append(f"<div class=\"figure\"><img src=\"{data_uri(path)}\" alt=\"{html.escape(alt)}\" "
                         f"title=\"{html.escape(Path(path).name)}\"></div>")
        for note in section.notes:
            parts.append(f"<p class=\"note\">{html.escape(note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(path: str | Path, title: str, sections: list[Section], subtitle: str = "") -> Path:
    path = Path(path)
    path.write_text(render(title, sections, subtitle), encoding="utf-8")
    return path
