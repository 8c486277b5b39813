"""Text for people: where a line of it goes, and sizes, ages and tables as the commands and the summary print them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

#: Receives one line of text for people, without its newline: what a process waits for, a repair, a line of
#: installer output, build progress. Where one is optional, ``None`` means nobody is told.
LineSink = Callable[[str], None]


def format_size(size: float) -> str:
    """Bytes for people: ``512 B``, ``12.3 MB`` (powers of 1000, as ``isoenv_max_size``'s ``MB``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def format_age(seconds: float) -> str:
    """How long ago, roughly: ``just now``, ``5 min ago``, ``3 h ago``, ``12 days ago``."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} day{'s' if seconds >= 2 * 86400 else ''} ago"


def table(rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows as aligned columns (the last one ragged)."""
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)] if rows else []
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def fit(line: str, width: int | None) -> str:
    """*line* cut to *width* characters, its end replaced by ``…`` when it is longer; whole when *width* is ``None``."""
    if width is None or len(line) <= width:
        return line
    return line[: max(0, width - 1)] + "…"
