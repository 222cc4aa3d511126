"""Small helpers for what the commands print."""

from __future__ import annotations


def key_value_table(rows: list[tuple[str, str]]) -> str:
    """Aligned ``key  value`` lines, indented by two spaces."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
