"""The evidence model: what tests record, how it travels to the controller, and the verdicts.

Tests record plain dicts into `item.user_properties` under the name "saveexport"; pytest (and
pytest-xdist, which serialises reports) carries them to the process that writes the report.
The report is rendered from the resulting JSON document alone.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from . import __version__
from .claims import ARTICLE, CLAIMS, NOT_TESTED, VERDICTS
from .errors import SaveexportError

PROPERTY = "saveexport"
SCHEMA = "saveexport/evidence"
SCHEMA_VERSION = 1


class Recorder:
    """Per test: `evidence.observe(...)`, `evidence.verdict(...)`; what it records goes in the report."""

    def __init__(self, user_properties: list, nodeid: str, engine_label: Callable[[], str | None] = lambda: None):
        self._props = user_properties
        self.nodeid = nodeid
        self._engine_label = engine_label

    def _add(self, record: dict[str, Any]) -> None:
        record.setdefault("test", self.nodeid)
        record.setdefault("engine", self._engine_label())
        self._props.append((PROPERTY, record))

    def observe(self, topic: str, **data: Any) -> None:
        """Record what was seen (outcomes go in as their dicts)."""
        self._add({"type": "observation", "topic": topic, "data": _plain(data)})

    def verdict(self, claim: str, verdict: str, why: str) -> None:
        """State one aspect of a claim as confirmed, refuted, version-dependent or not testable."""
        if claim not in CLAIMS:
            raise ValueError(f"unknown claim {claim!r}")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
        self._add({"type": "verdict", "claim": claim, "verdict": verdict, "why": why})


def fact_record(kind: str, key: str, data: dict[str, Any]) -> dict[str, Any]:
    """A session-level fact (engine, subject image): sent once per process, deduplicated by key."""
    return {"type": "fact", "kind": kind, "key": key, "data": _plain(data)}


def _plain(value: Any) -> Any:
    """JSON-safe copies: xdist serialises reports, and the report must re-render from JSON."""
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass
class Collector:
    """On the controller: gathers records from test reports and builds the evidence document."""

    records: list[dict[str, Any]] = field(default_factory=list)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: str = field(default_factory=lambda: _now())

    def add_report(self, report) -> None:
        test = self.tests.setdefault(report.nodeid, {"outcome": "passed", "duration_s": 0.0})
        test["duration_s"] = round(test["duration_s"] + float(getattr(report, "duration", 0.0)), 3)
        if report.failed:
            test["outcome"] = "failed" if report.when == "call" else "error"
        elif report.skipped and test["outcome"] == "passed":
            test["outcome"] = "skipped"
        if report.when == "teardown":
            for name, value in report.user_properties:
                if name == PROPERTY and isinstance(value, dict):
                    self.records.append(value)

    @property
    def has_evidence(self) -> bool:
        return bool(self.records)

    def document(self, exit_status: int | None = None, run_id: str | None = None) -> dict[str, Any]:
        facts: dict[str, dict[str, dict[str, Any]]] = {}
        for record in self.records:
            if record.get("type") == "fact":
                facts.setdefault(record["kind"], {})[record["key"]] = record["data"]
        observations = [r for r in self.records if r.get("type") == "observation"]
        verdicts = [r for r in self.records if r.get("type") == "verdict"]
        engines = list(facts.get("engine", {}).values())
        labels = [e.get("label") for e in engines] or [None]
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "saveexport_version": __version__,
            "created": _now(),
            "started": self.started,
            "run_id": run_id,
            "exit_status": exit_status,
            "article": ARTICLE,
            "machine": machine_info(),
            "engines": engines,
            "subjects": list(facts.get("subject", {}).values()),
            "debian_mirror": merge_mirrors(list(facts.get("debian-mirror", {}).values())),
            "leaks": list(facts.get("leaks", {}).values()),
            "storage": list(facts.get("storage", {}).values()),
            "expectations": list(facts.get("expectation", {}).values()),
            "new_behaviours": list(facts.get("new-behaviour", {}).values()),
            "faults": list(facts.get("engine-fault", {}).values()),
            "claims": summarise(verdicts, self.tests, labels),
            "observations": observations,
            "tests": self.tests,
        }


def merge_mirrors(seen: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What every process of the run said of the Debian mirror, as one: the choice, and each suite's source."""
    asked = [m for m in seen if m.get("asked")]
    if not asked:
        return None
    merged = dict(asked[0])
    merged["suites"] = {suite: uri for m in asked for suite, uri in (m.get("suites") or {}).items()}
    return merged


def summarise(verdicts: list[dict], tests: dict[str, dict], engines: list[str | None]) -> dict[str, Any]:
    """One verdict per claim and engine, with the aspects that led to it."""
    out: dict[str, Any] = {}
    for claim, text in CLAIMS.items():
        per_engine = {}
        for engine in engines:
            aspects = [dict(v, test_outcome=tests.get(v["test"], {}).get("outcome", "?"))
                       for v in verdicts if v["claim"] == claim and v.get("engine") == engine]
            per_engine[engine or "engine"] = _verdict_of(claim, aspects)
        out[claim] = {"text": text, "per_engine": per_engine}
    return out


def _verdict_of(claim: str, aspects: list[dict]) -> dict[str, Any]:
    sound = [a for a in aspects if a["test_outcome"] == "passed"]
    if not aspects:
        if claim in NOT_TESTED:
            return {"verdict": "not testable", "summary": NOT_TESTED[claim], "aspects": []}
        return {"verdict": "no verdict", "summary": "no test in this run recorded a verdict", "aspects": []}
    if not sound:
        return {"verdict": "no verdict", "summary": "the tests for this claim failed; see their reports",
                "aspects": aspects}
    kinds = {a["verdict"] for a in sound}
    if kinds == {"confirmed"}:
        verdict = "confirmed"
    elif "refuted" in kinds:
        verdict = "refuted"
    elif "version-dependent" in kinds:
        verdict = "version-dependent"
    elif kinds == {"not testable"}:
        verdict = "not testable"
    else:
        verdict = "confirmed"
    summary = "; ".join(f"{a['verdict']}: {a['why']}" for a in sound) if len(kinds) > 1 or verdict != "confirmed" \
        else "; ".join(a["why"] for a in sound)
    if len(sound) < len(aspects):
        summary += f" ({len(aspects) - len(sound)} aspect(s) from failed tests left out)"
    return {"verdict": verdict, "summary": summary, "aspects": aspects}


def machine_info() -> dict[str, Any]:
    import docker
    import pytest

    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "pytest": pytest.__version__, "docker_sdk": docker.__version__}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class EvidenceError(SaveexportError):
    """A file that cannot be read as evidence this version understands."""


# Every schema version the project has written, and how to bring it to the current one. Version 1 is the
# only number ever written, but its documents grew: the first ones (2026-11-27) have no leaks, mirror,
# faults, storage, expectations or new behaviours, their engines may lack the oldest API and the spoken
# one, and their subjects do not name their engine. Reading fills what a document lacks with "not
# recorded", so every renderer reads one shape.
READABLE = {1}


def load(path) -> dict[str, Any]:
    """An evidence file, upgraded to the current shape; anything else is one line (EvidenceError)."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"cannot read evidence {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return upgrade(document, str(path))


def upgrade(document: Any, source: str = "evidence") -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise EvidenceError(f"{source} is not a saveexport evidence file (no 'schema': '{SCHEMA}')")
    version = document.get("schema_version")
    if version not in READABLE:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise EvidenceError(f"{source} is evidence schema {version!r}, which this saveexport ({__version__}) cannot "
                            f"read ({'a newer saveexport wrote it; upgrade' if newer else 'not a version ever written'};"
                            f" readable: {', '.join(map(str, sorted(READABLE)))})")
    document = dict(document)
    for key in LISTS + ("engines",):
        if not isinstance(document.get(key), list):
            document[key] = []
    for key in ("claims", "tests"):
        if not isinstance(document.get(key), dict):
            document[key] = {}
    document.setdefault("debian_mirror", None)
    document.setdefault("run_id", None)
    for engine in document["engines"]:
        engine.setdefault("label", f"{engine.get('kind', 'engine')}-{engine.get('version', '?')}")
        for key in ("min_api_version", "client_api_version"):
            engine.setdefault(key, "?")
        engine.setdefault("variant", "")
        engine.setdefault("components", {})
    document["schema_version"] = SCHEMA_VERSION
    return document


LISTS = ("subjects", "leaks", "storage", "expectations", "new_behaviours", "faults", "observations")


def merge(documents: list[dict[str, Any]], sources: list[str] | None = None) -> dict[str, Any]:
    """Several runs' evidence as one (the matrix and its move pass, or one CI job per engine): engines by
    label, lists joined, tests united, a claim's verdict per engine taken from the run that gave one. An
    engine in two runs that did not behave alike (baseline.behaviour) is shown twice, side by side, the
    later one named by its run, with a warning: a merge never picks one answer silently."""
    sources = sources or [str(d.get("run_id") or f"file {n + 1}") for n, d in enumerate(documents)]
    documents, warnings = _apart_where_they_disagree(documents, sources)
    merged = dict(documents[0])
    merged["merged_from"] = [run for d in documents for run in d.get("merged_from") or [
        {"run_id": d.get("run_id"), "created": d.get("created"), "exit_status": d.get("exit_status")}]]
    merged["merge_warnings"] = [w for d in documents for w in d.get("merge_warnings") or []] + warnings
    merged["exit_status"] = max(int(d.get("exit_status") or 0) for d in documents)
    engines: dict[str, Any] = {}
    for document in documents:
        for engine in document.get("engines") or []:
            engines.setdefault(engine.get("label"), engine)
    merged["engines"] = list(engines.values())
    for key in LISTS:
        merged[key] = [item for d in documents for item in d.get(key) or []]
    merged["storage"] = [dict(item, run_id=item.get("run_id") or d.get("run_id"))
                         for d in documents for item in d.get("storage") or []]
    merged["tests"] = {name: test for d in documents for name, test in (d.get("tests") or {}).items()}
    merged["debian_mirror"] = next((d["debian_mirror"] for d in documents if d.get("debian_mirror")), None)
    claims: dict[str, Any] = {}
    for document in documents:
        for claim, data in (document.get("claims") or {}).items():
            into = claims.setdefault(claim, {"text": data.get("text"), "per_engine": {}})
            for engine, entry in (data.get("per_engine") or {}).items():
                if engine not in into["per_engine"] or into["per_engine"][engine].get("verdict") == "no verdict":
                    into["per_engine"][engine] = entry
    merged["claims"] = claims
    baselines = [d["baseline"] for d in documents if d.get("baseline")]
    if baselines:
        merged["baseline"] = {"file": baselines[0]["file"],
                              "changes": [c for b in baselines for c in b.get("changes") or []],
                              "notes": [n for b in baselines for n in b.get("notes") or []]}
    return merged


def _apart_where_they_disagree(documents: list[dict[str, Any]],
                               sources: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    from .baseline import STORAGE_KEY, behaviour  # what a baseline compares two runs of one engine must agree on

    seen: dict[str, tuple[dict[str, str], str]] = {}
    out, warnings = [], []
    for document, source in zip(documents, sources):
        try:
            facts = behaviour(document)
        except (KeyError, TypeError):  # records without the fields compared: nothing to disagree about
            facts = {}
        for engine in [e.get("label") for e in document.get("engines") or []]:
            mine = facts.get(engine, {})
            if engine not in seen:
                seen[engine] = (mine, source)
                continue
            theirs, first = seen[engine]
            # what a private engine's storage kept depends on which tests the run had (the move pass keeps
            # less than the matrix): one run's kinds are one sample, as the baseline also judges them
            differ = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k] and k != STORAGE_KEY)
            if not differ:
                seen[engine] = ({**theirs, **mine}, first)
                continue
            run = document.get("run_id") or source
            renamed = f"{engine} (run {run})"
            document = _relabel(document, engine, renamed)
            for e in document["engines"]:
                if e.get("label") == renamed:
                    e["merged_as"] = f"run {run}"
            said = "; ".join(f"{k}: {theirs[k]!r} in {first}, {mine[k]!r} in {source}" for k in differ[:3])
            warnings.append(f"{engine} is in {first} and {source}, and the runs disagree ({said}"
                            + (f"; {len(differ) - 3} more" if len(differ) > 3 else "")
                            + f"): both are shown, the second as {renamed}")
        out.append(document)
    return out, warnings


def _relabel(value: Any, old: str, new: str) -> Any:
    """A copy with every mention of an engine label (keys, values) renamed."""
    if isinstance(value, dict):
        return {(new if k == old else k): _relabel(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_relabel(v, old, new) for v in value]
    return new if value == old else value
