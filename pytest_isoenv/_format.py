"""Sizes and ages for people, as the cache commands and their reasons print them."""

from __future__ import annotations


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
