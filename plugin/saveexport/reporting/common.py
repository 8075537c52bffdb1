"""What every renderer of the report shares: pipe tables, cells cut to a readable length, byte counts,
the daemon's words without what always varies, and a path named as the user would name it."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate


def table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def cell(text: Any, limit: int = 160) -> str:
    value = "" if text is None else str(text)
    value = " ".join(value.split()).replace("|", "\\|")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def mb(n: Any) -> str:
    return "" if n is None else f"{int(n):,} B ({int(n) / 1e6:.1f} MB)"


def observations(document: dict[str, Any], topic: str) -> list[dict[str, Any]]:
    return [o for o in document.get("observations", []) if o.get("topic") == topic]


def normalise_words(text: str | None) -> str:
    """The daemon's words without what always varies (ids, temporary paths, run names)."""
    value = text or ""
    value = re.sub(r"sha256:[0-9a-f]{64}", "sha256:…", value)
    value = re.sub(r"saveexport-[0-9a-f]{8}-(gw\d+-)?", "saveexport-…-", value)  # run id, xdist worker
    value = re.sub(r"docker-import-\d+", "docker-import-…", value)
    value = re.sub(r"/[\w./-]*/tmp/", "…/tmp/", value)
    value = re.sub(r"\d{6,}", "…", value)  # temporary names such as Podman's api_load.tar1242487690
    return value


def without_temporary(text: str) -> str:
    """Recorded data as a reader can cite it: a temporary directory (the run's archives, pytest's tmp_path)
    named by the file only; everything else as recorded."""
    return re.sub(r"/(?:tmp|var/tmp|dev/shm)/[^\s\"'<>]*/", "…/", text)


TEMPORARY = re.compile(r"^(/tmp|/var/tmp|/dev/shm)/[^/]+/")


def user_path(path: str | os.PathLike, project: Path | None = None) -> str:
    """A path as a reader can use it: relative to the project where it is inside it; a temporary
    directory's own name (tmp.XXXX, a tox envtmpdir) left out, since nobody can open it later."""
    text = str(path)
    root = (project or Path.cwd()).resolve()
    try:
        return str(Path(text).resolve().relative_to(root))
    except (ValueError, OSError):
        pass
    marker = text.find("/reports/")  # a fresh clone in a temporary directory: name it from the project down
    if TEMPORARY.match(text) and marker >= 0:
        return text[marker + 1:]
    return TEMPORARY.sub("…/", text)


def atomic_write(path: Path, text: str | bytes) -> None:
    """A half-written report is worse than none: write beside it, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; a report is for reading
    data = text.encode("utf-8") if isinstance(text, str) else text
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
