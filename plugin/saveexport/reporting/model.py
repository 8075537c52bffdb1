"""The report's evidence model: what every output shows, read from the evidence document alone.

One grid (claims and cross-load cells as rows, engines as columns, one word of the verdict vocabulary per
cell), the sentences saying what differs between engines, the move grid, and the inventory rows (engines,
subject images). Markdown, HTML, the job summary and a merged report all render this; none computes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..storage_watch import counted
from .common import cell, normalise_words, observations

# The grid's words: claims.md's verdict vocabulary, and what an archive fed to a way in did.
SYMBOLS = {
    "confirmed": "✓", "refuted": "✗", "version-dependent": "±", "not testable": "–", "no verdict": "?",
    "loads and runs": "✓", "loads, cannot run": "◐", "refused": "✗", "loaded nothing": "∅",
    "not measured": "·",
}
TONE = {  # the HTML colour of each word
    "confirmed": "yes", "loads and runs": "yes", "refuted": "no", "refused": "no", "version-dependent": "part",
    "loads, cannot run": "part", "loaded nothing": "part", "not testable": "none", "no verdict": "fail",
    "not measured": "none",
}
DIFFERS = "◆"

TITLES = {  # the claims in a few words, for the grid's rows (claims.py holds the article's sentences)
    "C1": "save several, load restores all", "C2": "save accepts a container",
    "C3": "load overwrites existing images", "C4": "a compose app to a host offline",
    "C5": "export takes only a container", "C6": "import names it, takes the tag",
    "C7": "a base image from an export", "C8": "save/export, load/import, naming",
    "C9": "load of an export fails", "C10": "import of a save: cannot run",
    "C11": "export smaller: layers repeat files", "C12": "load needs layers, import any files",
    "C13": "import ≈ commit",
}
WAYS = [("save", "load"), ("save", "import"), ("export", "load"), ("export", "import")]


@dataclass
class Cell:
    word: str                       # one of SYMBOLS
    anchor: str = ""                # where its evidence is (an id in the page)
    evidence: str = ""              # what the engine did, in a sentence or a few

    @property
    def symbol(self) -> str:
        return SYMBOLS.get(self.word, "?")


@dataclass
class Row:
    key: str                        # C1 … C13, or "save → load"
    title: str
    cells: dict[str, Cell]          # engine label -> cell
    article: str = ""

    @property
    def differs(self) -> bool:
        return len({c.word for c in self.cells.values() if c.word != "not measured"}) > 1


@dataclass
class Engine:
    label: str                      # the evidence's name for it (docker-28.5.2-containerd)
    short: str                      # the grid's column (28.5.2 c8d)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class MoveRow:
    kind: str
    writer: str
    source: str
    bytes: int | None
    compression: str
    cells: dict[str, Cell]          # target label -> cell

    @property
    def differs(self) -> bool:
        return len({c.word for c in self.cells.values() if c.word != "not measured"}) > 1


@dataclass
class Model:
    engines: list[Engine]
    rows: list[Row]
    differences: list[str]
    moves: list[MoveRow]
    warnings: list[str]

    def short(self, label: str | None) -> str:
        """The column name of an engine, also of one this document only names (a move archive's writer)."""
        known = next((e.short for e in self.engines if e.label == label), None)
        if known:
            return known
        match = LABEL.match(label or "")
        if not match:
            return label or "engine"
        kind, version, store = match.groups()
        return short_label({"kind": kind, "version": version, "image_store": "containerd" if store == "containerd"
                            else "graphdriver", "storage_driver": store or "overlay2"})


LABEL = re.compile(r"^(docker|podman)-([0-9][^-]*)(?:-([a-z0-9]+))?$")  # engines.py's labels, variant-free


def anchor(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "-" for ch in p.lower()).strip("-") for p in parts)


def short_label(engine: dict[str, Any]) -> str:
    """`20.10.24`, `28.5.2 c8d`, `28.5.2 api≥1.44`, `podman 4.3.1`: narrow enough for nine columns."""
    version = str(engine.get("version") or "?").split("+")[0].split("~")[0]
    if engine.get("kind") == "podman":
        text = f"podman {version}"
    elif not engine.get("kind"):
        return engine.get("label") or "engine"
    else:
        text = version
        if engine.get("image_store") == "containerd":
            text += " c8d"
        elif engine.get("storage_driver") not in (None, "", "overlay2"):
            text += f" {engine['storage_driver']}"
    variant = engine.get("variant") or ""
    if variant.startswith("min-api-"):
        text += f" api≥{variant.removeprefix('min-api-')}"
    elif variant:
        text += f" {variant}"
    if engine.get("merged_as"):
        text += f" ({engine['merged_as']})"
    return text


def engines_of(document: dict[str, Any]) -> list[Engine]:
    facts = document.get("engines") or []
    found = [Engine(e.get("label") or "engine", short_label(e), e) for e in facts]
    if not found:  # a run without engine facts still has one column
        labels = {label for data in (document.get("claims") or {}).values() for label in data.get("per_engine") or {}}
        found = [Engine(label, label) for label in sorted(labels) or ["engine"]]
    found.sort(key=_engine_order)
    shorts = [e.short for e in found]
    for e in found:
        if shorts.count(e.short) > 1:  # two engines the short form cannot tell apart: the full name
            e.short = e.label
    return found


def _engine_order(engine: Engine) -> tuple:
    """Docker before Podman, versions in order, the graphdrivers before the containerd store."""
    f = engine.facts
    version = tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.+~-]", str(f.get("version") or ""))[:3])
    return (f.get("kind") != "docker", version, f.get("image_store") == "containerd", f.get("variant") or "",
            engine.label)


def claim_word(entry: dict[str, Any] | None, claim: str) -> str:
    if not entry:
        return "not measured"
    verdict = entry.get("verdict") or "no verdict"
    if verdict == "no verdict" and not entry.get("aspects"):
        return "not measured"  # no test of that run spoke to the claim (a move pass, a run of some tests)
    return verdict


def cross_word(data: dict[str, Any]) -> str:
    into = data.get("into") or {}
    if not into.get("ok"):
        return "refused"
    runs = [data.get(k) for k in ("run_default", "run_original") if data.get(k)]
    if not runs or any(r.get("ok") and (r.get("result") or {}).get("state") == "running" for r in runs):
        return "loads and runs"
    return "loads, cannot run"


def cross_evidence(data: dict[str, Any]) -> str:
    into = data.get("into") or {}
    said = into.get("message") if not into.get("ok") else ""
    parts = ["succeeds" if into.get("ok") else f"fails: {normalise_words(said)}"]
    for key, what in (("run_default", "as is"), ("run_original", "with the original command")):
        run = data.get(key)
        if run:
            state = (run.get("result") or {}).get("state", "?")
            parts.append(f"runs {what}: " + (f"yes ({state})" if run.get("ok") else
                                             f"no, {state}: {normalise_words(run.get('message'))}"))
    return cell("; ".join(parts), 400)


def build(document: dict[str, Any]) -> Model:
    engines = engines_of(document)
    labels = [e.label for e in engines]
    rows = []
    for claim, data in (document.get("claims") or {}).items():
        per = data.get("per_engine") or {}
        cells = {}
        for label in labels:
            entry = per.get(label)
            word = claim_word(entry, claim)
            cells[label] = Cell(word, anchor(claim, label), (entry or {}).get("summary") or "")
        rows.append(Row(claim, TITLES.get(claim, claim), cells, data.get("text") or ""))
    crossed: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for o in observations(document, "cross-load"):
        d = o["data"]
        crossed.setdefault((d["archive"], d["way_in"]), {})[o.get("engine") or labels[0]] = d
    for way in WAYS + sorted(set(crossed) - set(WAYS)):
        if way not in crossed:
            continue
        key = f"{way[0]} → {way[1]}"
        cells = {label: (Cell(cross_word(crossed[way][label]), anchor("cross", *way, label),
                              cross_evidence(crossed[way][label])) if label in crossed[way]
                         else Cell("not measured")) for label in labels}
        rows.append(Row(key, "", cells, f"the subject's {way[0]} archive given to `{way[1]}`, then run as is and "
                                        "with the image's original command"))
    model = Model(engines, rows, [], move_rows(document, engines), list(document.get("merge_warnings") or []))
    model.differences = differences(document, model)
    return model


def move_rows(document: dict[str, Any], engines: list[Engine]) -> list[MoveRow]:
    """Each archive a writer made, against every engine of the document: a pair no run measured (engines
    in different jobs) is 'not measured', never blank."""
    targets = [e.label for e in engines]
    found: dict[tuple[str, str, str], MoveRow] = {}
    for o in observations(document, "move"):
        d = o["data"]
        if d.get("route"):  # Podman's other way in (podman load): a sentence where it differs, not a column
            continue
        archive = d["archive"]
        key = (archive["kind"], archive["writer"], archive.get("source_engine") or archive["writer"])
        row = found.setdefault(key, MoveRow(*key, archive.get("bytes"),
                                            "/".join(sorted(set(archive.get("layer_compression") or []))) or "?", {}))
        if d["target"] not in targets:
            targets.append(d["target"])
        said = normalise_words((d.get("load") or {}).get("message")) if d["outcome"] == "refused" else ""
        row.cells[d["target"]] = Cell(d["outcome"], anchor("move", *key, d["target"]), cell(said, 200))
    for row in found.values():
        for target in targets:
            row.cells.setdefault(target, Cell("not measured"))
        row.cells = {t: row.cells[t] for t in targets}
    return [found[k] for k in sorted(found)]


def _grouped(values: dict[str, str], model: Model) -> list[tuple[str, list[str]]]:
    """{engine: value} as [(value, [short labels])], in the engines' order."""
    out: dict[str, list[str]] = {}
    order = [e.label for e in model.engines]
    for label, value in sorted(values.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        out.setdefault(value, []).append(model.short(label))
    return list(out.items())


def _sentence(subject: str, values: dict[str, str], model: Model, quote: bool = False) -> str:
    groups = _grouped(values, model)
    said = "; ".join(f"{(f'`{cell(v, 110)}`' if quote else v)} on {', '.join(es)}" for v, es in groups)
    return f"{subject}: {said}."


def differences(document: dict[str, Any], model: Model) -> list[str]:
    """Short sentences naming the engines, for what is not the same on all of them."""
    if len(model.engines) < 2:
        return []
    lines = []
    for row in model.rows:
        measured = {label: c.word for label, c in row.cells.items() if c.word != "not measured"}
        if len(set(measured.values())) > 1:
            lines.append(_sentence(f"{row.key} ({row.title})", measured, model))
    words: dict[tuple[str, str], dict[str, str]] = {}
    for o in observations(document, "cross-load"):
        d = o["data"]
        into = d["into"]
        if not into.get("ok"):
            words.setdefault((d["archive"], d["way_in"]), {})[o.get("engine")] = normalise_words(into.get("message"))
        run = d.get("run_default") or {}
        if run and not run.get("ok") and run.get("message"):
            words.setdefault((d["archive"], f"{d['way_in']}, then run as is"), {})[o.get("engine")] = \
                normalise_words(run.get("message"))
    for (archive, way), per in sorted(words.items()):
        if len(set(per.values())) > 1:
            lines.append(_sentence(f"{archive} archive → {way}, the daemon's words", per, model, quote=True))
    layouts = {o.get("engine"): o["data"]["layout"] for o in observations(document, "save-structure")}
    if len(set(layouts.values())) > 1:
        lines.append(_sentence("`save` writes", layouts, model))
    built = {o.get("engine"): o["data"]["built_layer"] for o in observations(document, "layer-compression")}
    if len(set(built.values())) > 1:
        lines.append(_sentence("a layer the engine built is saved with compression", built, model))
    sizes = {o.get("engine"): ("save smaller" if o["data"]["save_bytes"] < o["data"]["export_bytes"]
                               else "export smaller") for o in observations(document, "sizes")}
    if len(set(sizes.values())) > 1:
        lines.append(_sentence("the smaller archive", sizes, model))
    for row in model.moves:
        measured = {t: c.word for t, c in row.cells.items() if c.word != "not measured"}
        if len(set(measured.values())) > 1:
            lines.append(_sentence(f"{move_name(row, model)}, loaded", measured, model))
    return lines + storage_differences(document, model) + route_differences(document, model)


def storage_differences(document: dict[str, Any], model: Model) -> list[str]:
    """What an engine's storage kept that nothing it names holds: after each single operation (kinds and
    counts), and over a whole run (kinds only: a merged document holds each engine once per run, and a run's
    counts follow the tests it ran)."""
    per_operation: dict[str, dict[str, str]] = {}
    for o in observations(document, "storage-operation"):
        d = o["data"]
        if d.get("measured"):
            per_operation.setdefault(d["operation"], {})[o.get("engine")] = counted(d.get("kept") or {})
    lines = [_sentence(f"`{operation}`, the engine's storage kept", per, model)
             for operation, per in sorted(per_operation.items()) if len(set(per.values())) > 1]
    kinds: dict[str, set[str]] = {}
    for s in document.get("storage") or []:
        if s.get("measured"):
            kinds.setdefault(s["engine"], set()).update(item["kind"] for item in s.get("kept") or [])
    whole = {engine: ", ".join(sorted(k)) or "nothing" for engine, k in kinds.items()}
    if len(set(whole.values())) > 1:
        lines.append(_sentence("over a whole run, the engine's storage kept", whole, model))
    return lines


def route_differences(document: dict[str, Any], model: Model) -> list[str]:
    """Where a second way into an engine (`podman load` beside Podman's compat API) did otherwise than the
    engine's API with the same archive: outcome, names or image id."""
    api, other = {}, []
    for o in observations(document, "move"):
        d = o["data"]
        key = (d["archive"]["kind"], d["archive"]["writer"], d.get("target_engine") or d["target"])
        if d.get("route"):
            other.append((key, d))
        else:
            api[key] = d
    lines = []
    for key, d in other:
        base = api.get(key)
        if base is None:
            continue
        said = [f"{field}: {base.get(field)!r} by its API, {d.get(field)!r} by {d['route']}"
                for field in ("outcome", "names", "image_id") if base.get(field) != d.get(field)]
        if said:
            lines.append(f"{key[0].replace('-', ' ')} written by {key[1]}, loaded on {model.short(key[2])} by "
                         f"`{d['route']}`: " + "; ".join(said) + ".")
    return lines


def move_name(row: MoveRow, model: Model) -> str:
    kind = row.kind.replace("-", " ")
    if row.writer == row.source:
        return f"{kind} from {model.short(row.source)}"
    if LABEL.match(row.writer):  # an engine writing as its build does (a raised API floor writes as without)
        return f"{kind} from {model.short(row.source)} (written as {model.short(row.writer)})"
    return f"{kind} ({row.writer}, of {model.short(row.source)}'s image)"


def engine_rows(model: Model) -> list[list[str]]:
    """One row per engine; its components on one line."""
    rows = []
    for e in model.engines:
        f = e.facts
        if not f:
            continue
        newest, oldest, spoken = f.get("api_version"), f.get("min_api_version"), f.get("client_api_version")
        api = f"{oldest}–{newest}" if oldest and oldest != "?" else str(newest)
        api += f"; {spoken}" if spoken and spoken != "?" else ""
        components = ", ".join(f"{k} {_version_in(v)}" for k, v in (f.get("components") or {}).items())
        rows.append([f"`{e.short}`", e.label, f.get("version"), api, f.get("storage_driver"), f.get("image_store"),
                     cell(components, 200), cell(f.get("endpoint"), 60)])
    return rows


def _version_in(text) -> str:
    """`runc version 1.1.5+ds1\\ncommit: …` → `1.1.5+ds1`: a component's version, on one line."""
    found = re.search(r"\d+\.\d+[\w.+~-]*", str(text))
    return found.group(0) if found else " ".join(str(text).split())


def subject_rows(document: dict[str, Any], model: Model) -> list[list[Any]]:
    """One row per engine and image, the engine named; evidence from before the engine was recorded with
    each subject gives one row per distinct image, counting the engines that used it."""
    seen: dict[tuple, list[Any]] = {}
    for s in document.get("subjects") or []:
        engine = s.get("engine")
        key = (engine, s.get("requested"), s.get("obtained"), s.get("source_ref"), s.get("image_id"),
               s.get("layers"), s.get("size"))
        if key in seen:
            seen[key][-1] += 1
            continue
        seen[key] = [model.short(engine) if engine else "not recorded", s.get("requested"), s.get("obtained"),
                     s.get("source_ref"), (s.get("image_id") or "")[:19], s.get("layers"), s.get("size"),
                     s.get("note"), 1]
    return sorted(seen.values(), key=lambda r: (str(r[0]), str(r[1])))
