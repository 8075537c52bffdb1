"""Engines side by side under pytest-xdist: each engine's tests run in one worker.

A private engine (a dockerd or Podman service the plugin starts) belongs to the worker that
started it: a second worker starting the same engine would stop the first one's daemon under it.
xdist's own `--dist loadgroup` cannot be relied on for this: on pytest 9.2 its grouping silently
does nothing (it rewrites item node ids, which pytest no longer reads; pytest-xdist#1386). So the
plugin supplies the loadgroup scheduler itself: xdist's own LoadGroupScheduling, with the group
read from the engine named in the test id. Tests without an engine are spread like `--dist load`.
"""

from __future__ import annotations

GROUP_PREFIX = "saveexport-"


def engine_scope(nodeid: str, engine_ids: list[str]) -> str:
    """The work unit of a test: its engine's group, an xdist_group suffix, or the test alone."""
    if nodeid.rfind("@") > nodeid.rfind("]"):  # an xdist_group suffix (xdist with pytest < 9.2)
        return nodeid.rsplit("@", 1)[1]
    if not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    params = nodeid[nodeid.index("[") + 1:-1]
    for engine in sorted(engine_ids, key=len, reverse=True):  # docker-28.5.2-overlay2 before a shorter id
        if params == engine or params.startswith(engine + "-") or params.endswith("-" + engine) \
                or f"-{engine}-" in params:
            return GROUP_PREFIX + engine
    return nodeid


def make_scheduler(config, log, engine_ids: list[str]):
    """An xdist LoadGroupScheduling whose groups are the engines."""
    from xdist.scheduler import LoadGroupScheduling

    class EngineGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return engine_scope(nodeid, engine_ids)

    return EngineGroupScheduling(config, log)
