"""Regression baseline: has an engine's behaviour changed since a stored evidence file?

Compared per engine (the label names the version and image store): claim verdicts, each cross-load
cell (succeeds or not, exception type, the daemon's words with ids and paths left out, whether the
result runs), which kinds of object a private engine's storage kept after the run, the save layout and its layers' compression (also of a layer the engine built), and
which archive is smaller. Ids, times,
temporary paths and timings always vary and are never compared.
"""

from __future__ import annotations

from typing import Any

from .reporting.common import normalise_words as _normalise_words, observations


def behaviour(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for claim, data in document.get("claims", {}).items():
        for engine, entry in data["per_engine"].items():
            if entry["verdict"] == "no verdict" and not entry.get("aspects"):
                continue  # no test of this run spoke to the claim (the move pass): not measured, not changed
            out.setdefault(engine, {})[f"{claim} verdict"] = entry["verdict"]
    for o in observations(document, "cross-load"):
        d, engine = o["data"], o.get("engine")
        cell = f"{d['archive']} archive → {d['way_in']}"
        into = d["into"]
        facts = out.setdefault(engine, {})
        facts[f"{cell}: outcome"] = "succeeds" if into["ok"] else f"fails with {into.get('error_type')}"
        if not into["ok"]:
            facts[f"{cell}: the daemon's words"] = _normalise_words(into.get("message"))
        for run in ("run_default", "run_original"):
            if d.get(run):
                facts[f"{cell}: {run.replace('_', ' ')}"] = str((d[run].get("result") or {}).get("state"))
    for o in observations(document, "save-structure"):
        compression = "/".join(sorted({layer["compression"] for layer in o["data"]["layers"]}))
        out.setdefault(o.get("engine"), {})["save layout"] = f"{o['data']['layout']}, layers {compression}"
    for o in observations(document, "layer-compression"):
        out.setdefault(o.get("engine"), {})["a layer built here is saved"] = o["data"]["built_layer"]
    kept: dict[str, set[str]] = {}
    for s in document.get("storage") or []:
        if s.get("measured") and not s.get("shared"):  # a shared engine's storage is not the suite's alone
            # which kinds of object it kept (over every run a merged document holds), not how many or after
            # which test: one run's count is one sample
            kept.setdefault(s["engine"], set()).update(k["kind"] for k in s.get("kept") or [])
    for engine, kinds in kept.items():
        out.setdefault(engine, {})[STORAGE_KEY] = ", ".join(sorted(kinds)) or "nothing"
    for o in observations(document, "move"):
        d = o["data"]
        key = f"move {d['archive']['kind']} by {d['archive']['writer']}" + (f" via {d['route']}" if d.get("route") else "")
        out.setdefault(d.get("target_engine") or d["target"], {})[key] = d["outcome"]
    for o in observations(document, "sizes"):
        if not {"save_bytes", "export_bytes"} <= set(o["data"]):
            continue  # a sizes record without both sizes says nothing about which is smaller
        smaller = "save" if o["data"]["save_bytes"] < o["data"]["export_bytes"] else "export"
        out.setdefault(o.get("engine"), {})["smaller archive"] = smaller
    return out


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(changes, notes): changes fail the run; notes say what could not be compared."""
    before, now = behaviour(baseline), behaviour(current)
    changes, notes = [], []
    for engine, facts in now.items():
        if engine not in before:
            notes.append(f"{engine}: not in the baseline (a new engine or version): nothing to compare")
            continue
        unmeasured: dict[str, str] = {}
        for key in sorted(set(facts) | set(before[engine])):
            was, is_ = before[engine].get(key, "—"), facts.get(key, "—")
            if key == STORAGE_KEY and key in facts and was != "—":
                _compare_storage(engine, was, is_, changes, notes)
                continue
            if key not in facts:
                unmeasured[key] = was
            elif was in ("—", "not testable") and was != is_:  # the suite measures more now: nothing regressed
                notes.append(f"{engine}: {key}: not measured in the baseline, now {is_!r}")
            elif was != is_:
                changes.append(f"{engine}: {key}: was {was!r}, now {is_!r}")
        notes.extend(_unmeasured_notes(engine, unmeasured))
    return changes, notes


LISTED_ONE_BY_ONE = 3


def _unmeasured_notes(engine: str, unmeasured: dict[str, str]) -> list[str]:
    """What the baseline holds and this run did not measure: one by one when few, else one line per
    engine counting them by family, since a run of part of the suite (the move pass alone, or one job of
    many) leaves hundreds, and a reader needs to know which part is missing, not every cell of it."""
    if len(unmeasured) <= LISTED_ONE_BY_ONE:
        return [f"{engine}: {key}: not measured in this run (was {was!r})" for key, was in unmeasured.items()]
    families: dict[str, int] = {}
    for key in unmeasured:
        families[_family(key)] = families.get(_family(key), 0) + 1
    counted = ", ".join(f"{n} {family}" for family, n in sorted(families.items(), key=lambda kv: (-kv[1], kv[0])))
    return [f"{engine}: {len(unmeasured)} facts of the baseline not measured in this run ({counted})"]


def _family(key: str) -> str:
    if key.startswith("move "):
        return "move cells"
    if key.endswith(" verdict"):
        return "claim verdicts"
    if " archive → " in key:
        return "cross-load facts"
    return key


STORAGE_KEY = "storage kept after the run"


def readable(changes: list[str], notes: list[str]) -> list[tuple[str, str]]:
    """The diff as people read it, in pytest's terminal summary and from `saveexport report --baseline`:
    [(line, "red" | "green" | "")]."""
    lines = [(f"CHANGED  {line}", "red") for line in changes] + [(f"note     {line}", "") for line in notes]
    return lines if changes else lines + [("every engine behaved as in the baseline", "green")]


def _compare_storage(engine: str, was: str, is_: str, changes: list[str], notes: list[str]) -> None:
    """A kind of object kept that the baseline never kept is a change; keeping fewer kinds is a note, since
    a run of some of the tests (the move pass alone) keeps less without the engine behaving differently."""
    before = set() if was == "nothing" else set(was.split(", "))
    now = set() if is_ == "nothing" else set(is_.split(", "))
    if now - before:
        changes.append(f"{engine}: {STORAGE_KEY}: was {was!r}, now {is_!r} (it keeps what it did not)")
    elif now != before:
        notes.append(f"{engine}: {STORAGE_KEY}: was {was!r}, now {is_!r} (fewer kinds in this run)")
