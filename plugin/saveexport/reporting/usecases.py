"""The report's sections on using the archives: what import loses and brings back, the article's use cases
(C4, C7), timings and tests."""

from __future__ import annotations

from typing import Any

from .common import cell, mb, observations, table

def import_losses(document: dict[str, Any], add) -> None:
    losses = observations(document, "import-loses")
    repairs = observations(document, "import-repair")
    if not (losses or repairs):
        return
    add("## What import of an export loses, and what brings it back\n")
    add("A minimal set of `docker import --change` instructions makes the imported export start and answer "
        "(`pg_isready`) again: starting from one instruction per lost setting, each was dropped in turn and kept "
        "out when postgres still answered without it; no instruction left can be dropped.\n")
    engines = list(dict.fromkeys(o.get("engine") for o in losses + repairs))
    rows = []
    for engine in engines:
        lost = [k for o in losses if o.get("engine") == engine for k, v in o["data"]["fields"].items() if v["lost"]]
        needed = [c for o in repairs if o.get("engine") == engine for c in o["data"]["minimal_changes"]]
        rows.append([engine, ", ".join(lost) or "nothing", cell("; ".join(f"`{c}`" for c in needed) or "none", 500)])
    add(table(rows, ["engine", "lost", "the fewest --change lines that bring it back"]))
    add("")
    for engine in engines:
        add.fold(f"{engine}: each setting, and every trial")
        for o in (o for o in losses if o.get("engine") == engine):
            add(table([[k, cell(v["original"], 90), cell(v["imported"], 90), "lost" if v["lost"] else "kept"]
                       for k, v in o["data"]["fields"].items()], ["config", "original image", "imported export", ""]))
            add("")
        for o in (o for o in repairs if o.get("engine") == engine):
            d = o["data"]
            if d.get("verified_by_import"):
                add("Trials applied the instructions to the bare import's config by a metadata-only build; the final "
                    "set was then checked with a real `docker import --change`.\n")
            tried = d.get("tried") or []
            if tried:
                add(table([[cell(t.get("label") or "; ".join(t["changes"]) or "(none)", 120),
                            "yes" if t["ok"] else "no", cell(t.get("why"), 120)] for t in tried],
                          ["trial", "postgres answers", "what happened"]))
                add("")
        add.end_fold()


def _secs(outcome: dict[str, Any] | None) -> str:
    return f"{outcome['duration_s']:.1f} s" if outcome and outcome.get("duration_s") is not None else "–"


def _daemon_words(text: str | None) -> str:
    """The line of compose's output that carries the daemon's refusal (the rest is progress)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    said = [line for line in lines if "rror" in line or "exited" in line] or lines[-1:]
    return cell(said[-1] if said else "", 200)


def use_cases(document: dict[str, Any], add) -> None:
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
                         cell(needed, 900)])
        add(table(rows, ["engine", "route", "air-gapped engine", "what moved, and its cost", "data flows",
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
                rows.append([o.get("engine") or "", route, shape.get("layers"), mb(shape.get("size")),
                             shape.get("history_entries"), cell(kept, 120), derived.get("layers"),
                             "yes" if r.get("customisation_present") else "no",
                             f"{_secs(r.get('base'))} + build {_secs(r.get('build'))}"])
        add(f"The subject's container got a file and a package ({bases[0]['data'].get('package')}, by "
            f"`dpkg -i`); it was made a base image by export → import and by commit, an image was built "
            f"`FROM` each and run.\n")
        add(table(rows, ["engine", "route", "base layers", "base size", "history", "run settings kept",
                          "derived layers", "customisation there", "time"]))
        add("")


def timings(document: dict[str, Any], add) -> None:
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
    add(table(rows, ["operation", "count", "min s", "median s", "max s"]))
    add("")


def tests(document: dict[str, Any], add) -> None:
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
    add.fold(f"each of the {len(tests)} tests")
    add(table([[f"`{k}`", v["outcome"], f"{v['duration_s']:.1f}"] for k, v in tests.items()],
              ["test", "outcome", "seconds"]))
    add("")
    add.end_fold()

