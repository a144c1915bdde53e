"""Where a result came from: code version, packages, interpreter, machine, command line.

Recorded with every run so a stored number can be traced back to the code that made it
(STYLE.md, airbench: "the code's provenance saved with its results"). Torch's version is
read from the installed distribution's metadata, so this module never imports torch.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "git_info", "package_versions", "provenance"]

PACKAGES = ("bnlab", "torch", "numpy", "pandas", "pyarrow", "scipy", "mnist1d", "pyyaml", "tqdm")
_GIT_TIMEOUT_S = 5.0


def _git(args: list[str], cwd: Path) -> str | None:
    """Run ``git`` in ``cwd``; ``None`` if git is missing, fails or is not a repository."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=8)
def git_info(path: str | None = None) -> dict[str, Any]:
    """The git commit and dirty flag of the working tree that holds ``path``.

    Args:
        path: a directory inside the working tree; default: the bnlab package's source,
            so an editable install reports the checkout it runs from.

    Returns:
        ``{"git_sha": str | None, "git_dirty": bool | None}``; both ``None`` outside a
        git working tree (e.g. an installed wheel). Cached per process.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], where)
    if sha is None:
        return {"git_sha": None, "git_dirty": None}
    # Tracked files only: untracked scratch files do not change what the code computes.
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"git_sha": sha, "git_dirty": None if status is None else bool(status)}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` from their distribution metadata (no imports)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(**extra: Any) -> dict[str, Any]:
    """A JSON-ready record of the code and machine that produced a run.

    Args:
        **extra: fields the caller knows and this module cannot (``device``,
            ``threads``, ``executor``, ...); they override the defaults.

    Returns:
        A dict with ``git_sha``, ``git_dirty``, ``packages`` (name -> version or
        ``None``), ``python``, ``platform``, ``machine``, ``hostname``, ``argv``,
        ``recorded`` (UTC, ISO 8601), then ``extra``.

    Example:
        >>> info = provenance(device="cpu", threads=1)
        >>> sorted(info["packages"])[:2]
        ['bnlab', 'mnist1d']
    """
    record: dict[str, Any] = dict(git_info())
    record.update(
        packages=package_versions(),
        python=platform.python_version(),
        platform=platform.platform(),
        machine=platform.machine(),
        hostname=platform.node(),
        argv=list(sys.argv),
        recorded=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    record.update(extra)
    return record
