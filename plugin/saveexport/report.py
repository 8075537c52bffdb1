"""The evidence report: Markdown (tabulate, pipe format), the same as one self-contained HTML page, and
JSON, all rendered from the document alone."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import markdown
from tabulate import tabulate

from .archives.plot import draw_layers
from .errors import ArchiveError
from .storage_watch import summary as storage_summary

MARKDOWN_NAME = "saveexport-report.md"
JSON_NAME = "saveexport-evidence.json"
HTML_NAME = "saveexport-report.html"
PLOT_NAME = "saveexport-layers.png"


def write(document: dict[str, Any], directory: Path) -> list[Path]:
    """Write every file atomically (a half-written report is worse than none): Markdown, evidence, HTML."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / JSON_NAME
    md_path = directory / MARKDOWN_NAME
    html_path = directory / HTML_NAME
    _atomic_write(json_path, json.dumps(document, indent=1, sort_keys=False, ensure_ascii=False) + "\n")
    text = render_markdown(document)
    _atomic_write(md_path, text)
    draw_plots(document, directory)
    _atomic_write(html_path, render_html(text, directory))
    return [md_path, json_path, html_path]


STYLE = ("body{font:15px/1.45 system-ui,sans-serif;max-width:78rem;margin:2rem auto;padding:0 1rem;color:#222}"
         "table{border-collapse:collapse;margin:.6rem 0;font-size:13px}th,td{border:1px solid #ccc;"
         "padding:.25rem .45rem;vertical-align:top;text-align:left}th{background:#f3f3f3}"
         "code{background:#f6f6f6;padding:0 .2rem;font-size:12px}img{max-width:100%}")


def render_html(markdown_text: str, directory: Path) -> str:
    """The Markdown report as one page with its pictures inlined, to attach to a ticket or publish as is."""
    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"], output_format="html")

    def inline(match: re.Match) -> str:
        picture = directory / match.group(1)
        if not picture.is_file():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(picture.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"/]+\.png)"', inline, body)
    title = html.escape(markdown_text.splitlines()[0].lstrip("# ") if markdown_text else "saveexport report")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def draw_plots(document: dict[str, Any], directory: Path) -> list[Path]:
    """The pictures the Markdown links to, drawn from the document alone."""
    made = []
    for o in observations(document, "save-structure")[:1]:
        layers = o["data"]["layers"]
        shadowed = sum(layer["shadowed_bytes"] for layer in layers)
        total = sum(layer["size"] for layer in layers)
        made.append(draw_layers(layers, f"{', '.join(o['data'].get('repo_tags') or [])}: {shadowed / 1e6:.1f} MB of "
                                        f"{total / 1e6:.1f} MB hidden by later layers", directory / PLOT_NAME))
    return made


def load(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"cannot read evidence {path}: {exc}") from exc
    if not isinstance(document, dict) or document.get("schema") != "saveexport/evidence":
        raise ArchiveError(f"{path} is not a saveexport evidence file (no 'schema': 'saveexport/evidence')")
    return document


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; a report is for reading
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def _cell(text: Any, limit: int = 160) -> str:
    value = "" if text is None else str(text)
    value = " ".join(value.split()).replace("|", "\\|")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _mb(n: Any) -> str:
    return "" if n is None else f"{int(n):,} B ({int(n) / 1e6:.1f} MB)"


def verdict_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    engines = [e["label"] for e in document.get("engines") or []] or ["engine"]
    rows = []
    for claim, data in document.get("claims", {}).items():
        row = [claim, _cell(data["text"], 90)]
        for engine in engines:
            entry = data["per_engine"].get(engine) or {"verdict": "no verdict", "summary": ""}
            row.append(f"**{entry['verdict']}**")
            row.append(_cell(entry["summary"], 400))
        rows.append(row)
    headers = ["claim", "the article says"]
    for engine in engines:
        headers += [f"verdict ({engine})" if len(engines) > 1 else "verdict", "evidence"]
    return headers, rows


def observations(document: dict[str, Any], topic: str) -> list[dict[str, Any]]:
    return [o for o in document.get("observations", []) if o.get("topic") == topic]


def _mirror_paragraph(mirror: dict[str, Any] | None) -> str:
    """Which Debian mirror the run fetched from, and where that choice came from."""
    if not mirror:
        return ("Debian mirror: not asked in this run (every stand-in, engine build and package was already "
                "cached; a cached stand-in's note names the mirror it was built from).\n")
    candidates = mirror.get("candidates") or []
    if not candidates:
        return "Debian mirror: none configured.\n"
    first = candidates[0]
    text = f"Debian mirror: `{first['uri']}`, from {first['origin']}"
    if len(candidates) > 1:
        text += "; then " + ", ".join(f"`{c['uri']}`" for c in candidates[1:])
    suites = mirror.get("suites") or {}
    if suites:
        text += ". Fetched here: " + ", ".join(f"{suite} from `{uri}`" for suite, uri in suites.items())
    proxies = mirror.get("proxy") or {}
    if proxies:
        text += ". Through apt's proxy: " + ", ".join(f"`{p}`" for p in sorted(set(proxies.values())))
    if mirror.get("security"):
        text += ". Debian's security archive (" + ", ".join(f"`{u}`" for u in mirror["security"]) + \
            ") is kept apart and not used"
    return text + ".\n"


def _api_cell(engine: dict[str, Any]) -> str:
    """What the engine accepts and what the suite spoke to it (older evidence has only the newest)."""
    newest, oldest, spoken = engine.get("api_version"), engine.get("min_api_version"), engine.get("client_api_version")
    cell = f"{oldest}–{newest}" if oldest and oldest != "?" else str(newest)
    return f"{cell}; {spoken}" if spoken and spoken != "?" else cell


def render_markdown(document: dict[str, Any]) -> str:
    out: list[str] = []
    add = out.append
    add("# saveexport evidence report\n")
    add(f"Article: {document.get('article')}. Generated {document.get('created')} by saveexport "
        f"{document.get('saveexport_version')} (evidence schema {document.get('schema_version')}); "
        f"re-render with `saveexport report {JSON_NAME}`.\n")
    _between_engines(document, add)  # what a reader came for first; the inventory follows

    add("## Engine\n")
    engines = document.get("engines") or []
    if engines:
        add(_table([[e["label"], e["kind"], e["version"], _api_cell(e), e["storage_driver"], e["image_store"],
                     _cell(", ".join(f"{k} {v}" for k, v in (e.get("components") or {}).items()), 300),
                     e["endpoint"]]
                    for e in engines],
                   ["engine", "kind", "version", "API (oldest–newest; spoken)", "storage driver", "image store",
                    "components", "endpoint"]))
    else:
        add("No engine was used in this run.")
    machine = document.get("machine") or {}
    add(f"\nMachine: {machine.get('platform')}, Python {machine.get('python')}, pytest {machine.get('pytest')}, "
        f"Docker SDK {machine.get('docker_sdk')}.\n")

    subjects = document.get("subjects") or []
    if subjects:
        add("## Subject images\n")
        add(_table([[s["requested"], s["obtained"], s["source_ref"], s["image_id"][:19], s["run_ref"], s["layers"],
                     _mb(s["size"]), _cell(s.get("note"))] for s in subjects],
                   ["requested", "obtained", "image used", "its id", "run copy", "layers", "size", "note"]))
        add("\nThe run works on a labelled copy of each image (same layers, its own id), so nothing it "
            "removes or overwrites belongs to anyone else.\n")
    add(_mirror_paragraph(document.get("debian_mirror")))

    compared = document.get("baseline")
    if compared:
        add("## Against the baseline\n")
        add(f"Baseline: `{compared['file']}`. " + ("Every engine behaved as in the baseline." if not compared["changes"]
                                                  else f"{len(compared['changes'])} change(s):"))
        add("\n".join(f"- **changed** {_cell(c, 400)}" for c in compared["changes"]))
        add("\n".join(f"- {_cell(n, 300)}" for n in compared["notes"]))
        add("")

    add("## Verdicts\n")
    headers, rows = verdict_rows(document)
    add(_table(rows, headers))
    add("")

    _new_behaviours(document, add)
    _leaks(document, add)
    _storage(document, add)
    _faults(document, add)
    _cross_load(document, add)
    _moves(document, add)
    _sizes(document, add)
    _import_losses(document, add)
    _use_cases(document, add)
    _generic(document, add)
    _timings(document, add)
    _tests(document, add)
    return "\n".join(out) + "\n"


def _normalise_words(text: str | None) -> str:
    """The daemon's words without what always varies (ids, temporary paths, run names)."""
    value = text or ""
    value = re.sub(r"sha256:[0-9a-f]{64}", "sha256:…", value)
    value = re.sub(r"saveexport-[0-9a-f]{8}-", "saveexport-…-", value)
    value = re.sub(r"docker-import-\d+", "docker-import-…", value)
    value = re.sub(r"/[\w./-]*/tmp/", "…/tmp/", value)
    value = re.sub(r"\d{6,}", "…", value)  # temporary names such as Podman's api_load.tar1242487690
    return value


def changes_between(document: dict[str, Any]) -> list[str]:
    """What differs between the engines of one run, read from the evidence alone."""
    engines = [e["label"] for e in document.get("engines") or []]
    if len(engines) < 2:
        return []
    lines = []
    for claim, data in document.get("claims", {}).items():
        verdicts = {e: (data["per_engine"].get(e) or {}).get("verdict") for e in engines}
        if len(set(verdicts.values())) > 1:
            lines.append(f"{claim}: " + "; ".join(f"{e} {v}" for e, v in verdicts.items()))
    cells: dict[tuple, dict[str, str]] = {}
    for o in observations(document, "cross-load"):
        d = o["data"]
        into, run = d["into"], d.get("run_default") or {}
        what = f"{'ok' if into['ok'] else 'fails'}: {_normalise_words(into.get('message') if not into['ok'] else '')}"
        if run:
            what += f" | runs as is: {(run.get('result') or {}).get('state')}: {_normalise_words(run.get('message'))}"
        cells.setdefault((d["archive"], d["way_in"]), {})[o.get("engine")] = what
    for (archive, way), per_engine in sorted(cells.items()):
        if len(set(per_engine.values())) > 1:
            lines.append(f"{archive} archive → {way}: " + "; ".join(f"{e}: {w}" for e, w in per_engine.items()))
    layouts = {o.get("engine"): o["data"]["layout"] + (
        " (layers " + "/".join(sorted({layer["compression"] for layer in o["data"]["layers"]})) + ")")
        for o in observations(document, "save-structure")}
    if len(set(layouts.values())) > 1:
        lines.append("save archive layout: " + "; ".join(f"{e}: {v}" for e, v in layouts.items()))
    built = {o.get("engine"): o["data"]["built_layer"] for o in observations(document, "layer-compression")}
    if len(set(built.values())) > 1:
        lines.append("a layer the engine built is saved: " + "; ".join(f"{e}: {v}" for e, v in built.items()))
    sizes = {o.get("engine"): o["data"]["save_bytes"] < o["data"]["export_bytes"] for o in observations(document, "sizes")}
    if len(set(sizes.values())) > 1:
        lines.append("the save archive is smaller than the export on: " + ", ".join(e for e, s in sizes.items() if s))
    return lines


def _between_engines(document: dict[str, Any], add) -> None:
    lines = changes_between(document)
    if not lines and len(document.get("engines") or []) < 2:
        return
    add("## What differs between the engines\n")
    add("Generated from the evidence: verdicts, the daemon's words (ids and temporary paths left out), save "
        "layouts and sizes that are not the same on every engine.\n")
    add("\n".join(f"- {_cell(line, 600)}" for line in lines) or "- nothing: every engine behaved alike")
    add("")
    sizes = observations(document, "sizes")
    if sizes:
        add(_table([[o.get("engine"), f"{o['data']['save_bytes']:,}", f"{o['data']['export_bytes']:,}",
                     f"{o['data']['save_bytes'] - o['data']['export_bytes']:+,}"] for o in sizes],
                   ["engine", "save bytes", "export bytes", "save − export"]))
        add("")


def _leaks(document: dict[str, Any], add) -> None:
    leaks = document.get("leaks") or []
    if not leaks:
        return
    add("## What stayed behind\n")
    add("After each engine's run and cleanup: what the suite failed to remove (must be nothing); images "
        "that appeared during the run and that the engine kept although nothing of the run names them any "
        "more (the plugin's own cache, saveexport-cache-*, which seeds a private engine, is not counted); "
        "and what the engine holds compared with before the run (`docker system df`, which on a private "
        "engine includes that cache).\n")
    rows = []
    for leak in leaks:
        before, after = leak.get("engine_usage_before") or {}, leak.get("engine_usage_after") or {}
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        kept = leak.get("engine_kept_images")
        details = leak.get("engine_kept_details") or {}
        rows.append([leak["engine"], "nothing" if not leak["suite_leftovers"] and not leak["cleanup_problems"]
                     else _cell(f"{leak['suite_leftovers']} {leak['cleanup_problems']}", 200),
                     "not recorded" if kept is None else _cell("; ".join(
                         f"{i.removeprefix('sha256:')[:12]} {', '.join(t) or '(untagged)'}{_kept_detail(details.get(i))}"
                         for i, t in kept.items()) or "nothing", 600),
                     ", ".join(f"{k} {v:+,}" for k, v in delta.items() if v) or "nothing"])
    add(_table(rows, ["engine", "left by the suite", "images the engine kept", "engine usage, after − before"]))
    add("")


MOVE_SYMBOLS = {"loads and runs": "✓", "loads, cannot run": "◐", "refused": "✗", "loaded nothing": "∅"}


def move_rows(document: dict[str, Any]) -> tuple[list[str], dict[str, dict[str, dict[str, Any]]]]:
    """(targets in order, {archive row: {target: cell}}): the move grid's data."""
    targets: list[str] = []
    grid: dict[str, dict[str, dict[str, Any]]] = {}
    for o in observations(document, "move"):
        d = o["data"]
        target = d["target"]
        if target not in targets:
            targets.append(target)
        archive = d["archive"]
        grid.setdefault(f"{archive['kind']} by {archive['writer']}", {})[target] = d
    return sorted(targets), grid


def _moves(document: dict[str, Any], add) -> None:
    targets, grid = move_rows(document)
    if not grid:
        return
    add("## Moving archives between engines\n")
    add("A small image (files, a symlink, a deleted file, a command that prints a known line), built by each "
        "source engine itself; each writer's archive of it loaded into each engine. ✓ loads and runs, "
        "◐ loads but cannot run, ✗ refused, ∅ loaded nothing. A row's source is the engine that built the "
        "image (skopeo converts the machine's engine's save).\n")
    rows, differing = [], []
    for row, cells in sorted(grid.items()):
        archive = next(iter(cells.values()))["archive"]
        diagonal = cells.get(archive["source_engine"], {}).get("outcome")
        rows.append([row, f"{archive['bytes']:,}", "/".join(sorted(set(archive["layer_compression"]))) or "?",
                     *(MOVE_SYMBOLS.get(cells[t]["outcome"], "?") if t in cells else "" for t in targets)])
        own = cells.get(archive["source_engine"], {})
        for target, cell in sorted(cells.items()):
            if target == archive["source_engine"] or not own:
                continue
            words = _normalise_words((cell.get("load") or {}).get("message")) if cell["outcome"] == "refused" else ""
            said = []
            if cell["outcome"] != diagonal:
                said.append(cell["outcome"] + (f" ({_cell(words, 200)})" if words else ""))
            both_loaded = cell.get("image_id") and own.get("image_id")
            if both_loaded and cell.get("named") != own.get("named"):
                said.append("loaded without a name" if not cell.get("named") else "loaded with its name")
            if both_loaded and cell.get("id_is") != own.get("id_is"):
                said.append(f"its id is {cell['id_is']} (on its own engine: {own.get('id_is') or 'no image'})")
            if said:
                differing.append(f"- {archive['kind']} saved on {archive['source_engine']} ({archive['writer']}), "
                                 f"loaded on {target}: " + "; ".join(said))
    add(_table(rows, ["archive", "bytes", "layers", *targets]))
    add("")
    if differing:
        add("Where a pair differs from the archive's own engine (the diagonal):\n")
        add("\n".join(differing))
        add("")


def _new_behaviours(document: dict[str, Any], add) -> None:
    """Engines outside what the expectations were measured on: what was extrapolated, and what differed."""
    new = document.get("new_behaviours") or []
    extrapolated = [e for e in document.get("expectations") or [] if e.get("extrapolated")]
    if not new and not extrapolated:
        return
    add("## New behaviours and extrapolated expectations\n")
    if new:
        add("What an engine did that no measured engine of its kind, version and store did (the test failed):\n")
        add(_table([[n["engine"], n["rule"], _cell(n["what"], 200), _cell(repr(n["value"]), 60),
                     _cell(repr(n["seen"]), 60), ", ".join(n["measured_on"]) or "none", n.get("extrapolated") or ""]
                    for n in sorted(new, key=lambda n: (n["engine"], n["rule"]))],
                   ["engine", "rule", "what", "expected", "seen", "measured on", "extrapolated because"]))
        add("")
    if extrapolated:
        add("Expectations answered for engines they were not measured on (each still asserted):\n")
        add(_table([[e["engine"], e["rule"], _cell(repr(e["value"]), 60), ", ".join(e["measured_on"]) or "none",
                     _cell(e["extrapolated"], 200)] for e in sorted(extrapolated, key=lambda e: (e["engine"], e["rule"]))],
                   ["engine", "rule", "expected", "measured on", "why extrapolated"]))
        add("")


def _storage(document: dict[str, Any], add) -> None:
    found = document.get("storage") or []
    if not found:
        return
    add("## What the engines' storage kept\n")
    add("Counted in each engine's own storage (its layer records, read-write layers, driver directories, "
        "image configs, containerd's blobs and snapshots, Podman's records), not its image list: what is "
        "stored after the run's cleanup that nothing the engine names holds, and that was not there before "
        "the run, with the test after which it first appeared (per test on a private engine, whose storage "
        "the suite alone uses; over the whole run on a shared one).\n")
    rows = []
    runs = {}
    for s in found:  # a merged report holds each engine once per run (the matrix, its move pass)
        runs.setdefault(s["engine"], []).append(s.get("run_id"))
    for s in sorted(found, key=lambda s: (s["engine"], str(s.get("run_id")))):
        engine = s["engine"] + (f" (run {s.get('run_id')})" if len(runs[s["engine"]]) > 1 else "")
        s = dict(s, engine=engine)
        if not s.get("measured"):
            rows.append([s["engine"], s["store"], f"not measurable here: {_cell(s.get('why', ''), 200)}", ""])
            continue
        total = sum((s.get("kept_bytes") or {}).values())
        rows.append([s["engine"], s["store"], _cell(storage_summary(s.get("kept") or []), 400),
                     f"{total:,}" if s.get("kept") else "0"])
        for kind, reason in (s.get("unjudged") or {}).items():
            before, after = (s.get("before") or {}).get(kind, 0), (s.get("after") or {}).get(kind, 0)
            rows.append([s["engine"], s["store"], f"{kind}: {before} before, {after} after ({_cell(reason, 160)})", ""])
    add(_table(rows, ["engine", "store", "kept after the run's cleanup (nothing names it)", "bytes"]))
    add("")


def _faults(document: dict[str, Any], add) -> None:
    found = document.get("faults") or []
    if not found:
        return
    add("## Engine faults\n")
    add("Engines that died, went away, stopped or restarted during the run. After a fault that lasted, an "
        "engine's remaining tests failed at once with the same line; one that restarted or came back carried on. "
        "The other engines' results above are complete.\n")
    found = sorted(found, key=lambda f: (f["engine"], f["when"]))
    add(_table([[f["engine"], f["kind"], f["when"], _cell(f["during"], 120), _cell(f["line"], 200),
                 _cell(" / ".join(f.get("log_tail") or [])[-300:], 300)] for f in found],
               ["engine", "what", "when (UTC)", "during", "", "the daemon's last log lines"]))
    add("")


def _kept_detail(detail: dict[str, Any] | None) -> str:
    if not detail:
        return ""
    if "error" in detail:
        return f" ({detail['error']})"
    labels = ", ".join(f"{k}={v}" for k, v in detail.get("labels", {}).items())
    return (f" ({detail.get('layers')} layers, made by `{detail.get('made_by') or '?'}`, created "
            f"{str(detail.get('created'))[:19]}" + (f", labels {labels}" if labels else "") + ")")


def _cross_load(document: dict[str, Any], add) -> None:
    cells = observations(document, "cross-load")
    if not cells:
        return
    add("## Cross-load matrix (C9, C10, C12)\n")
    add("Each archive of the subject fed to each way in; then: does the result run without a command, and "
        "with the subject's original entrypoint and command? The daemon's words are quoted as it said them.\n")
    rows = []
    for o in sorted(cells, key=lambda o: (o["data"]["archive"], o["data"]["way_in"])):
        d = o["data"]
        into = d["into"]
        runs = d.get("run_default") or {}
        again = d.get("run_original") or {}
        rows.append([o.get("engine") or "", d["archive"], d["way_in"], "yes" if into["ok"] else "no",
                     _cell(into.get("message") if not into["ok"] else _first(into), 140),
                     _run_cell(runs), _run_cell(again)])
    add(_table(rows, ["engine", "archive", "way in", "succeeds", "the daemon said", "runs as is",
                      "runs with the original command"]))
    add("")


def _first(outcome: dict[str, Any]) -> str:
    lines = (outcome.get("result") or {}).get("daemon_lines") or []
    return lines[-1] if lines else (outcome.get("message") or "")


def _run_cell(run: dict[str, Any]) -> str:
    if not run:
        return "—"
    result = run.get("result") or {}
    state = result.get("state", "?")
    if run.get("ok"):
        return f"yes ({state})"
    detail = run.get("message") or ""
    return _cell(f"no, {state}: {detail}", 160)


def _sizes(document: dict[str, Any], add) -> None:
    engines = list(dict.fromkeys(o.get("engine") for o in observations(document, "sizes") +
                                 observations(document, "save-structure") + observations(document, "decomposition") +
                                 observations(document, "layer-compression")))
    if not engines:
        return
    add("## Sizes and structure (C11)\n")
    for engine in engines:
        if len(engines) > 1:
            add(f"### {engine}\n")
        _sizes_of(document, add, engine, plot=engine == engines[0])


def _sizes_of(document: dict[str, Any], add, engine: str | None, plot: bool) -> None:
    def mine(topic: str) -> list[dict[str, Any]]:
        return [o for o in observations(document, topic) if o.get("engine") == engine]

    sizes, structure, decomposition, flatten_diff = (mine("sizes"), mine("save-structure"), mine("decomposition"),
                                                     mine("flatten-diff"))
    for o in mine("layer-compression"):
        d = o["data"]
        came = "arrived by load" if d["subject_arrived_by_load"] else f"was obtained here: {d['subject_obtained']}"
        add(f"Layer compression in save archives: the subject's layers (it {came}) are written "
            f"**{'/'.join(d['subject_layers'])}**; a layer this engine built is written **{d['built_layer']}** "
            f"({d['built_layer_bytes']:,} B for {d['built_layer_uncompressed_bytes']:,} B of tar).\n")
    for o in sizes:
        d = o["data"]
        add(_table([["save archive", _mb(d["save_bytes"])], ["export archive", _mb(d["export_bytes"])],
                    ["save − export", _mb(d["save_bytes"] - d["export_bytes"])],
                    ["image size reported by the engine", _mb(d.get("image_size"))]], ["", "bytes"]))
        add("")
    for o in structure:
        d = o["data"]
        add(f"Save archive layout: **{d['layout']}**; top level: {_summarise_names(d['top_level'])}.\n")
        add(_table([[i + 1, _cell(layer["member"], 80), layer["compression"], f"{layer['size']:,}", layer["entries"],
                     layer["added"], layer["changed"], layer["removed"], f"{layer['shadowed_bytes']:,}"]
                    for i, layer in enumerate(d["layers"])],
                   ["#", "layer", "compression", "bytes", "entries", "added", "changed", "removed (whiteouts)",
                    "bytes shadowed later"]))
        add("")
        if plot:
            add(f"![file bytes per layer, visible and hidden by later layers]({PLOT_NAME})\n")
    for o in decomposition:
        d = o["data"]
        add("Where the difference between the two archives comes from (adds up to the measured difference):\n")
        rows = [[k.replace("_", " "), f"{v:,}"] for k, v in d.items() if isinstance(v, int)]
        add(_table(rows, ["part", "bytes"]))
        add("")
    for o in flatten_diff:
        d = o["data"]
        add(f"Flattened image (whiteouts applied) vs export: {d['image_files']:,} paths in the image, "
            f"{d['export_files']:,} in the export, {d['same_files']:,} identical.\n")
        add(_table([[cause, v["paths"], f"{v['image_bytes']:,}", f"{v['export_bytes']:,}"]
                    for cause, v in d["by_cause"].items()], ["cause", "paths", "image bytes", "export bytes"]))
        add("")
        add(_table([[_cell(x["path"], 70), x["where"], x["cause"],
                     _cell(", ".join(f"{k}: {v[0]} → {v[1]}" for k, v in x["fields"].items()), 80)]
                    for x in d["differences"][:60]], ["path", "where", "cause", "what differs"]))
        if len(d["differences"]) > 60:
            add(f"\n… and {len(d['differences']) - 60} more (all in the JSON).")
        add("")


def _summarise_names(names: list[str]) -> str:
    """Digest-named entries counted, the rest named: '12 directories named by digest, manifest.json, …'."""
    digest = re.compile(r"^[0-9a-f]{64}(\.json)?$")
    dirs = [n for n in names if digest.match(n) and not n.endswith(".json")]
    configs = [n for n in names if digest.match(n) and n.endswith(".json")]
    rest = [n for n in names if not digest.match(n)]
    parts = []
    if dirs:
        parts.append(f"{len(dirs)} directories named by digest")
    if configs:
        parts.append(f"{len(configs)} `<digest>.json` config file(s)")
    return ", ".join(parts + [f"`{n}`" for n in rest])


def _import_losses(document: dict[str, Any], add) -> None:
    losses = observations(document, "import-loses")
    repairs = observations(document, "import-repair")
    if not (losses or repairs):
        return
    add("## What import of an export loses, and what brings it back\n")
    for o in losses:
        rows = [[k, _cell(v["original"], 90), _cell(v["imported"], 90), "lost" if v["lost"] else "kept"]
                for k, v in o["data"]["fields"].items()]
        add(_table(rows, ["config", "original image", "imported export", ""]))
        add("")
    for o in repairs:
        d = o["data"]
        add("A minimal set of `docker import --change` instructions that makes the imported export start and "
            "answer (`pg_isready`) again: starting from one instruction per lost setting, each was dropped in "
            "turn and kept out when postgres still answered without it; no instruction left can be dropped. "
            + ("Trials applied the instructions to the bare import's config by a metadata-only build; the final set "
               "was then checked with a real `docker import --change`." if d.get("verified_by_import") else "")
            + "\n")
        add("\n".join(f"- `{c}`" for c in d["minimal_changes"]) or "- none needed")
        add("")
        tried = d.get("tried") or []
        if tried:
            add(_table([[_cell(t.get("label") or "; ".join(t["changes"]) or "(none)", 120),
                         "yes" if t["ok"] else "no", _cell(t.get("why"), 120)] for t in tried],
                       ["trial", "postgres answers", "what happened"]))
            add("")


def _secs(outcome: dict[str, Any] | None) -> str:
    return f"{outcome['duration_s']:.1f} s" if outcome and outcome.get("duration_s") is not None else "–"


def _daemon_words(text: str | None) -> str:
    """The line of compose's output that carries the daemon's refusal (the rest is progress)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    said = [line for line in lines if "rror" in line or "exited" in line] or lines[-1:]
    return _cell(said[-1] if said else "", 200)


def _use_cases(document: dict[str, Any], add) -> None:
    airgap = observations(document, "airgap-compose")
    bases = observations(document, "base-image")
    if not (airgap or bases):
        return
    add("## The article's use cases\n")
    if airgap:
        add("### C4: a compose application moved to an air-gapped engine\n")
        add("Postgres (the subject image) and the project's notes app run on the engine under test through "
            "pytest-docker. Their images go to a second engine that starts empty and cannot pull (a private "
            "dockerd; the compose file says `pull_policy: never`); the same compose file is brought up there "
            "and a note is written through the app and read back from postgres.\n")
        rows = []
        for o in airgap:
            d = o["data"]
            times = d.get("timings") or {}
            if d.get("route") == "save/load":
                moved = (f"`save` of {len(d.get('images') or [])} images: {d['archive']['bytes']:,} B "
                         f"({d['archive']['layout']}, {d['archive']['layers']} layers), {_secs(d.get('save'))}; "
                         f"`load` {_secs(d.get('load'))}")
                before = d.get("up_without_archive") or {}
                needed = ("nothing: names, config and layers came with the archive; before the load, compose up "
                          f"failed: {_daemon_words(before.get('message'))}")
            else:
                exports = d.get("exports") or {}
                moved = "; ".join(f"{s}: export {o2.get('bytes') or 0:,} B {_secs(o2)}, import "
                                  f"{_secs((d.get('restored_import') or {}).get(s))}" for s, o2 in exports.items())
                bare = d.get("up_after_bare_import") or {}
                needed = (f"after a bare import compose up failed: {_daemon_words(bare.get('message'))}; it worked "
                          f"with these `--change` lines: " + "; ".join(
                              f"{s}: " + ", ".join(f"`{c}`" for c in changes)
                              for s, changes in (d.get("changes") or {}).items()))
            rows.append([o.get("engine") or "", d.get("route"), d.get("target_engine") or "", moved,
                         "yes" if d.get("data_flows") else "no", f"{times.get('compose_up_s', 0):.1f} s",
                         _cell(needed, 900)])
        add(_table(rows, ["engine", "route", "air-gapped engine", "what moved, and its cost", "data flows",
                          "compose up", "what had to be restored"]))
        carried = [o for o in airgap if o["data"].get("source_data_on_target")]
        add("\nThe note written on the source engine before the move " +
            ("arrived on the air-gapped engine in: " + ", ".join(f"{o.get('engine')} {o['data'].get('route')}"
                                                               for o in carried) if carried else
             "was on the air-gapped engine in no route: images carry no volume data, which travels separately") +
            ".\n")
    if bases:
        add("### C7: a base image from a customised container\n")
        rows = []
        for o in bases:
            d = o["data"]
            for route, r in (d.get("routes") or {}).items():
                shape, derived = r.get("base_shape") or {}, r.get("derived_shape") or {}
                config = shape.get("config") or {}
                kept = ", ".join(k for k in ("Cmd", "Entrypoint", "Env", "Volumes", "ExposedPorts", "WorkingDir",
                                             "User", "StopSignal") if config.get(k)) or "none"
                rows.append([o.get("engine") or "", route, shape.get("layers"), _mb(shape.get("size")),
                             shape.get("history_entries"), _cell(kept, 120), derived.get("layers"),
                             "yes" if r.get("customisation_present") else "no",
                             f"{_secs(r.get('base'))} + build {_secs(r.get('build'))}"])
        add(f"The subject's container got a file and a package ({bases[0]['data'].get('package')}, by "
            f"`dpkg -i`); it was made a base image by export → import and by commit, an image was built "
            f"`FROM` each and run.\n")
        add(_table(rows, ["engine", "route", "base layers", "base size", "history", "run settings kept",
                          "derived layers", "customisation there", "time"]))
        add("")


def _generic(document: dict[str, Any], add) -> None:
    shown = {"cross-load", "sizes", "save-structure", "decomposition", "flatten-diff", "import-loses",
             "import-repair", "airgap-compose", "base-image", "layer-compression", "move"}
    rest = [o for o in document.get("observations", []) if o.get("topic") not in shown]
    if not rest:
        return
    add("## Other observations\n")
    add("What each experiment recorded, as recorded (the JSON file holds the same).\n")
    for o in rest:
        text = json.dumps(o["data"], indent=1, ensure_ascii=False)
        if len(text) > 6000:
            text = text[:6000] + "\n… (cut here; complete in the JSON file)"
        add(f"<details><summary>{o['topic']} — <code>{o['test']}</code></summary>\n")
        add("```json\n" + text + "\n```\n")
        add("</details>\n")


def _timings(document: dict[str, Any], add) -> None:
    ops: dict[str, list[float]] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "op" in value and "duration_s" in value and "ok" in value:
                ops.setdefault(value["op"], []).append(float(value["duration_s"]))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(document.get("observations"))
    if not ops:
        return
    add("## Timings\n")
    add("Engine operations recorded in this run (disk timings on shared machines are noisy: compare ratios "
        "within a run, not absolute seconds across runs).\n")
    rows = [[op, len(v), f"{min(v):.2f}", f"{sorted(v)[len(v) // 2]:.2f}", f"{max(v):.2f}"] for op, v in sorted(ops.items())]
    add(_table(rows, ["operation", "count", "min s", "median s", "max s"]))
    add("")


def _tests(document: dict[str, Any], add) -> None:
    tests = document.get("tests") or {}
    if not tests:
        return
    add("## Tests\n")
    total = sum(t["duration_s"] for t in tests.values())
    counts: dict[str, int] = {}
    for t in tests.values():
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    add(f"{len(tests)} tests ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}), "
        f"{total:.0f} s of test time; exit status {document.get('exit_status')}.\n")
    add(_table([[f"`{k}`", v["outcome"], f"{v['duration_s']:.1f}"] for k, v in tests.items()],
               ["test", "outcome", "seconds"]))


def render_inspect(summary: dict[str, Any]) -> str:
    """`saveexport inspect` for people."""
    out = [f"{summary['path']}: {summary['kind']}, layout {summary['layout']}, {summary['bytes']:,} bytes"
           + (f", {summary['outer_compression']}-compressed" if summary["outer_compression"] != "none" else "")
           + f", {summary['entries']:,} entries"]
    if summary.get("rootfs"):
        root = summary["rootfs"]
        out.append(f"files: {root['file_bytes']:,} bytes; top level: {', '.join(root['top_level'])}")
        if root["container_files"]:
            out.append(f"files an engine adds to containers: {', '.join(root['container_files'])} "
                       f"(this looks like docker/podman export)")
    for number, image in enumerate(summary.get("images") or [], 1):
        out.append("")
        out.append(f"image {number}: {', '.join(image['tags']) or '(no tags)'}  id {image['id'][:19]}")
        for key, value in image["config"].items():
            out.append(f"  {key}: {_cell(value, 200)}")
        out.append(_table([[i + 1, _cell(layer["member"], 60), layer["compression"], f"{layer['size']:,}",
                            layer["entries"], layer["added"], layer["changed"], layer["removed"],
                            f"{layer['shadowed_bytes']:,}"] for i, layer in enumerate(image["layers"])],
                          ["#", "layer", "compression", "bytes", "entries", "added", "changed", "removed",
                           "shadowed later"]))
        share = image["shadowed_bytes"] / image["layer_bytes"] if image["layer_bytes"] else 0
        out.append(f"  {image['files']:,} files in the flattened image; {image['shadowed_bytes']:,} bytes "
                   f"({share:.1%} of the layers' bytes) are hidden by later layers")
    if summary.get("unsafe_names"):
        out.append(f"unsafe member names (absolute or climbing): {', '.join(summary['unsafe_names'][:10])}")
    violations = summary.get("violations") or []
    if summary["layout"] != "rootfs":
        checked = "" if summary.get("digests_checked", True) else " (uncompressed layer digests not checked)"
        out.append("")
        out.append(f"verification: {'ok' if not violations else f'{len(violations)} violation(s)'}{checked}")
        for v in violations:
            out.append(f"  {v['code']}: {v['member']}: {v['detail']}")
    return "\n".join(out)


def render_diff(summary: dict[str, Any]) -> str:
    """`saveexport diff` for people."""
    out = [f"save {summary['save']} ({summary['save_bytes']:,} bytes) vs export {summary['export']} "
           f"({summary['export_bytes']:,} bytes); image {', '.join(summary['tags']) or summary['image'][:19]}",
           f"{summary['image_files']:,} paths in the flattened image, {summary['export_files']:,} in the export, "
           f"{summary['same_files']:,} identical", ""]
    out.append(_table([[cause, v["paths"], f"{v['image_bytes']:,}", f"{v['export_bytes']:,}"]
                       for cause, v in summary["by_cause"].items()], ["cause", "paths", "image bytes", "export bytes"]))
    out.append("")
    out.append(_table([[_cell(d["path"], 70), d["where"], d["cause"],
                        _cell(", ".join(f"{k}: {v[0]} → {v[1]}" for k, v in d["fields"].items()), 70)]
                       for d in summary["differences"][:100]], ["path", "where", "cause", "what differs"]))
    if len(summary["differences"]) > 100:
        out.append(f"… {len(summary['differences']) - 100} more (--json lists all)")
    out.append("")
    out.append("save − export, by cause (adds up exactly):")
    out.append(_table([[k.replace("_", " "), f"{v:,}"] for k, v in summary["decomposition"].items()
                       if isinstance(v, int)], ["part", "bytes"]))
    return "\n".join(out)
