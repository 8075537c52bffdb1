"""The report's inventory sections: the Debian mirror, what stayed behind, what the engines' storage kept,
engine faults, and engines the expectations were not measured on."""

from __future__ import annotations

from typing import Any

from ..storage import COMPAT_BODY
from ..storage_watch import summary as storage_summary
from .common import cell, table

def mirror_paragraph(mirror: dict[str, Any] | None) -> str:
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


SECTIONS = {  # key in the evidence -> (heading, what the section shows)
    "leaks": ("## What stayed behind\n",
           "After each engine's run and cleanup: what the suite failed to remove (must be nothing); images "
           "that appeared during the run and that the engine kept although nothing of the run names them any "
           "more (the plugin's own cache, saveexport-cache-*, which seeds a private engine, is not counted); "
           "and what the engine holds compared with before the run (`docker system df`, which on a private "
           "engine includes that cache).\n"),
    "storage": ("## What the engines' storage kept\n",
           "Counted in each engine's own storage (its layer records, read-write layers, driver directories, "
           "image configs, containerd's blobs and snapshots, Podman's records, and `tmp/`: a dockerd's unfinished "
           "imports, the archives a Podman's import was sent and never removed; on a Podman the suite did not "
           "start, those are in its image-copy directory, by default /var/tmp), not its image list: what is "
           "stored after the run's cleanup that nothing the engine names holds, and that was not there before "
           "the run, with the test after which it first appeared (per test on a private engine, whose storage "
           "the suite alone uses; over the whole run on a shared one).\n"),
    "faults": ("## Engine faults\n",
           "Engines that died, went away, stopped or restarted during the run. After a fault that lasted, an "
           "engine's remaining tests failed at once with the same line; one that restarted or came back carried on. "
           "The other engines' results above are complete.\n"),
}


def _opened(document: dict[str, Any], key: str, add) -> list[dict[str, Any]]:
    """A section's records; its heading and preamble are written only when it has any."""
    found = document.get(key) or []
    if found:
        add(SECTIONS[key][0])
        add(SECTIONS[key][1])
    return found


def leaks(document: dict[str, Any], add) -> None:
    leaks = _opened(document, "leaks", add)
    if not leaks:
        return
    rows = []
    for leak in leaks:
        before, after = leak.get("engine_usage_before") or {}, leak.get("engine_usage_after") or {}
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        kept = leak.get("engine_kept_images")
        details = leak.get("engine_kept_details") or {}
        rows.append([leak["engine"], "nothing" if not leak["suite_leftovers"] and not leak["cleanup_problems"]
                     else cell(f"{leak['suite_leftovers']} {leak['cleanup_problems']}", 200),
                     "not recorded" if kept is None else cell("; ".join(
                         f"{i.removeprefix('sha256:')[:12]} {', '.join(t) or '(untagged)'}{_kept_detail(details.get(i))}"
                         for i, t in kept.items()) or "nothing", 600),
                     ", ".join(f"{k} {v:+,}" for k, v in delta.items() if v) or "nothing"])
    runs: dict[str, int] = {}
    for row in rows:  # a merged report holds each engine once per run (the matrix, its move pass)
        runs[row[0]] = runs.get(row[0], 0) + 1
        if runs[row[0]] > 1:
            row[0] = f"{row[0]} (run {runs[row[0]]})"
    add(table(rows, ["engine", "left by the suite", "images the engine kept", "engine usage, after − before"]))
    add("")


def _kept_detail(detail: dict[str, Any] | None) -> str:
    if not detail:
        return ""
    if "error" in detail:
        return f" ({detail['error']})"
    labels = ", ".join(f"{k}={v}" for k, v in detail.get("labels", {}).items())
    return (f" ({detail.get('layers')} layers, made by `{detail.get('made_by') or '?'}`, created "
            f"{str(detail.get('created'))[:19]}" + (f", labels {labels}" if labels else "") + ")")


def storage(document: dict[str, Any], add) -> None:
    found = _opened(document, "storage", add)
    if not found:
        return
    rows = []
    runs = {}
    for s in found:  # a merged report holds each engine once per run (the matrix, its move pass)
        runs.setdefault(s["engine"], []).append(s.get("run_id"))
    for s in sorted(found, key=lambda s: (s["engine"], str(s.get("run_id")))):
        engine = s["engine"] + (f" (run {s.get('run_id')})" if len(runs[s["engine"]]) > 1 else "")
        s = dict(s, engine=engine, store=s["store"] + (f", and {s['copy_tmp']}'s {COMPAT_BODY}…" if s.get("copy_tmp")
                                                          else ""))
        if not s.get("measured"):
            rows.append([s["engine"], s["store"], f"not measurable here: {cell(s.get('why', ''), 200)}", ""])
            continue
        total = sum((s.get("kept_bytes") or {}).values())
        rows.append([s["engine"], s["store"], cell(storage_summary(s.get("kept") or []), 400),
                     f"{total:,}" if s.get("kept") else "0"])
        for kind, reason in (s.get("unjudged") or {}).items():
            before, after = (s.get("before") or {}).get(kind, 0), (s.get("after") or {}).get(kind, 0)
            rows.append([s["engine"], s["store"], f"{kind}: {before} before, {after} after ({cell(reason, 160)})", ""])
    add(table(rows, ["engine", "store", "kept after the run's cleanup (nothing names it)", "bytes"]))
    add("")


def faults(document: dict[str, Any], add) -> None:
    found = _opened(document, "faults", add)
    if not found:
        return
    found = sorted(found, key=lambda f: (f["engine"], f["when"]))
    add(table([[f["engine"], f["kind"], f["when"], cell(f["during"], 120), cell(f["line"], 200),
                 cell(" / ".join(f.get("log_tail") or [])[-300:], 300)] for f in found],
               ["engine", "what", "when (UTC)", "during", "", "the daemon's last log lines"]))
    add("")


def new_behaviours(document: dict[str, Any], add) -> None:
    """Engines outside what the expectations were measured on: what was extrapolated, and what differed."""
    new = document.get("new_behaviours") or []
    extrapolated = [e for e in document.get("expectations") or [] if e.get("extrapolated")]
    if not new and not extrapolated:
        return
    add("## New behaviours and extrapolated expectations\n")
    if new:
        add("What an engine did that no measured engine of its kind, version and store did (the test failed):\n")
        add(table([[n["engine"], n["rule"], cell(n["what"], 200), cell(repr(n["value"]), 60),
                     cell(repr(n["seen"]), 60), ", ".join(n["measured_on"]) or "none", n.get("extrapolated") or ""]
                    for n in sorted(new, key=lambda n: (n["engine"], n["rule"]))],
                   ["engine", "rule", "what", "expected", "seen", "measured on", "extrapolated because"]))
        add("")
    if extrapolated:
        add("Expectations answered for engines they were not measured on (each still asserted):\n")
        add(table([[e["engine"], e["rule"], cell(repr(e["value"]), 60), ", ".join(e["measured_on"]) or "none",
                     cell(e["extrapolated"], 200)] for e in sorted(extrapolated, key=lambda e: (e["engine"], e["rule"]))],
                   ["engine", "rule", "expected", "measured on", "why extrapolated"]))
        add("")

