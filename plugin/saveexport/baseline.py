"""Regression baseline: has an engine's behaviour changed since a stored evidence file?

Compared per engine (the label names the version and image store): claim verdicts, each cross-load
cell (succeeds or not, exception type, the daemon's words with ids and paths left out, whether the
result runs), which kinds of object a private engine's storage kept after the run, the save layout and its layers' compression (also of a layer the engine built), and
which archive is smaller. Ids, times,
temporary paths and timings always vary and are never compared.
"""

from __future__ import annotations

from typing import Any

from .report import _normalise_words, observations


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
    for s in document.get("storage") or []:
        if s.get("measured") and not s.get("shared"):  # a shared engine's storage is not the suite's alone
            # which kinds of object it kept, not how many or after which test: one run's count is one sample
            kinds = sorted({k["kind"] for k in s.get("kept") or []})
            out.setdefault(s["engine"], {})["storage kept after the run"] = ", ".join(kinds) or "nothing"
    for o in observations(document, "move"):
        d = o["data"]
        out.setdefault(d["target"], {})[f"move {d['archive']['kind']} by {d['archive']['writer']}"] = d["outcome"]
    for o in observations(document, "sizes"):
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
        for key in sorted(set(facts) | set(before[engine])):
            was, is_ = before[engine].get(key, "—"), facts.get(key, "—")
            if key not in facts:
                notes.append(f"{engine}: {key}: not measured in this run (was {was!r})")
            elif was in ("—", "not testable") and was != is_:  # the suite measures more now: nothing regressed
                notes.append(f"{engine}: {key}: not measured in the baseline, now {is_!r}")
            elif was != is_:
                changes.append(f"{engine}: {key}: was {was!r}, now {is_!r}")
    return changes, notes
