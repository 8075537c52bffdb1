"""The plugin's state in `config.stash`, under module-level keys (never private attributes)."""

from __future__ import annotations

import pytest

from .debian_mirror import Mirrors
from .evidence import Collector
from .settings import Settings

SETTINGS = pytest.StashKey[Settings]()
RUN_ID = pytest.StashKey[str]()
ENGINE_SPECS = pytest.StashKey[list]()  # the parsed --saveexport-engine values, in order
ENGINE_IDS = pytest.StashKey[dict]()  # test ids of existing endpoints, asked once
PENDING_FACTS = pytest.StashKey[list]()  # facts this process has not yet attached to a report
COLLECTOR = pytest.StashKey[Collector]()  # controller only
DOCUMENT = pytest.StashKey[dict]()  # controller only: the evidence document of this run
REPORT_PATHS = pytest.StashKey[list]()  # controller only
REPORT_ERROR = pytest.StashKey[str]()  # controller only
MIRRORS = pytest.StashKey[Mirrors]()  # the Debian mirrors every fetch of this process uses (asked lazily)
MIRRORS_NOTED = pytest.StashKey[dict]()  # what this process last recorded of them
PROGRESS_BEFORE = pytest.StashKey[object]()  # the progress sink an enclosing session (pytester) had
PROGRESS = pytest.StashKey[object]()  # this process's progress sink (progress.py)
ENGINE_FAULTS = pytest.StashKey[dict]()  # spec id -> the Engine that died, went away or stopped (its .fault)
