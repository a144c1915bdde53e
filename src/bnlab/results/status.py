"""``bnlab status``: runs by status per recipe, and each failure's first error line."""

from __future__ import annotations

from pathlib import Path

from bnlab.errors import UserError
from bnlab.results.store import DB_NAME, Store

__all__ = ["status_text"]


def status_text(out_dir: str | Path) -> str:
    """A short plain-text summary of the store in ``out_dir``.

    Raises:
        UserError: when ``out_dir`` holds no results database.
    """
    path = Path(out_dir) / DB_NAME
    if not path.is_file():
        raise UserError(f"no results in {out_dir} (no {DB_NAME}); run `bnlab run RECIPE "
                         f"--out {out_dir}` first or pass the right --out")
    with Store(out_dir) as store:
        runs = store.runs()
    if runs.empty:
        return f"{path}: no runs yet"
    lines = [f"{path}: {len(runs)} runs"]
    for recipe, group in runs.groupby("recipe", sort=True):
        counts = group["status"].value_counts()
        parts = ", ".join(f"{s} {int(counts[s])}" for s in sorted(counts.index))
        lines.append(f"  {recipe}: {parts}")
        for _, row in group[group["status"].isin(["failed", "diverged"])].iterrows():
            first = (row["error"] or "").strip().splitlines()
            lines.append(f"    run {row['id']} (seed {row['seed']}) {row['status']}: "
                         f"{first[-1] if first else 'no message'}")
    return "\n".join(lines)
