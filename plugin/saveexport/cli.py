"""`saveexport inspect | diff | report | gc | engine`: the parts of the suite that need no pytest run.

Exit codes: 0 fine; 1 a readable archive with violations, each named by a code (or leftovers gc could not
remove, or a report whose baseline found a change, or with fewer engines than --expect); 2 input that
cannot be read as an archive (not a tar, truncated, a bomb, a reference outside the archive, nothing in
it) or as evidence (not evidence, a schema this version cannot read).
Every failure prints one line (`saveexport: ...`); nothing prints a traceback.
"""

from __future__ import annotations

import json
import re  # json imports it anyway
import sys

from .errors import ArchiveError, SaveexportError

# Every module is imported by the subcommand that uses it: `inspect` on a large archive should not pay
# for docker-py, requests and Markdown first, and `inspect --metadata --json` (archives/metadata.py,
# before argparse) for nothing but os, json and hashlib.

RUN_TAG = re.compile(r"^saveexport-[0-9a-f]{8}-")


def _version_action():
    import argparse

    class _Version(argparse.Action):
        def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
            super().__init__(option_strings, dest=dest, default=default, nargs=0, help="show the version and exit")

        def __call__(self, parser, namespace, values, option_string=None):
            from . import __version__

            print(f"saveexport {__version__}")
            parser.exit()

    return _Version


def _metadata_fast(argv: list[str]) -> int | None:
    """`inspect --metadata --json FILE` on a plain tar, without argparse or the full reader; None: not this case."""
    if not argv or argv[0] != "inspect" or sorted(a for a in argv[1:] if a.startswith("-")) != ["--json", "--metadata"]:
        return None
    paths = [a for a in argv[1:] if not a.startswith("-")]
    if len(paths) != 1:
        return None
    from .archives.metadata import summary

    found = summary(paths[0])
    if found is None:
        return None
    sys.stdout.write(json.dumps(found, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fast = _metadata_fast(argv)
    if fast is not None:
        return fast
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="saveexport", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_version_action())
    sub = parser.add_subparsers(dest="command", required=True)

    ins = sub.add_parser("inspect", help="what an archive is: layout, images, layers, config, verification")
    ins.add_argument("archive", type=Path, help="the archive; - for standard input (read in one pass)")
    ins.add_argument("--json", action="store_true", help="JSON for machines instead of tables")
    ins.add_argument("--plot", type=Path, metavar="PNG", help="also draw layer sizes and shadowed bytes")
    ins.add_argument("--no-digests", action="store_true",
                     help="skip hashing uncompressed layers (faster; digests are then not verified)")
    ins.add_argument("--metadata", action="store_true",
                     help="manifests, indexes and configs only, seeking past the layers; verifies nothing")

    dif = sub.add_parser("diff", help="the flattened image of a save archive against an export archive")
    dif.add_argument("save", type=Path)
    dif.add_argument("export", type=Path)
    dif.add_argument("--image", type=int, default=1, help="which image of the save archive (1-based, default 1)")
    dif.add_argument("--json", action="store_true", help="JSON for machines instead of tables")

    ext = sub.add_parser("extract", help="extract an export's root, or an image's layers in order, into an empty "
                                          "directory (never outside it)")
    ext.add_argument("archive", type=Path)
    ext.add_argument("target", type=Path)
    ext.add_argument("--image", type=int, default=1, help="which image of a save archive (1-based, default 1)")

    rep = sub.add_parser("report", help="re-render the report from evidence JSON files (several are merged: "
                                         "the matrix and its move pass, or one CI job per engine)")
    rep.add_argument("evidence", type=Path, nargs="+", help="saveexport-evidence.json")
    rep.add_argument("--evidence-out", type=Path, help="also write the merged evidence JSON here")
    rep.add_argument("--baseline", type=Path, metavar="BASE.json",
                     help="compare the (merged) evidence with an earlier run's; exit 1 when an engine behaves otherwise")
    rep.add_argument("--expect", type=int, metavar="N",
                     help="exit 1 when fewer than N engines arrived (a CI job that died must not vanish silently)")
    rep.add_argument("--summary", type=Path, metavar="FILE",
                     help="also write the short text form (grid, differences, regressions) for a CI job summary")
    rep.add_argument("-o", "--output", type=Path, help="where to write it (default: Markdown on stdout); a name "
                                                        "ending in .html gets one self-contained page")

    gc = sub.add_parser("gc", help="remove what interrupted runs left on an engine, and (as root) of their private "
                                   "engines on this host (never anything else)")
    gc.add_argument("--docker-host", help="engine endpoint (default: DOCKER_HOST or the local socket)")
    gc.add_argument("--cache", action="store_true", help="also remove the cached offline builds (saveexport-cache-*) "
                                                         "and the Podman roots (podman:SUITE)")

    prov = sub.add_parser("provision", help="fetch Docker builds for the matrix from Debian's suites into a cache "
                                             "(or check a dockerd bundle you have), and Compose v2")
    prov.add_argument("--debian-mirror", metavar="URL",
                      help="the Debian mirror to fetch from (default: the Debian archive apt's own configuration "
                           "uses; env SAVEEXPORT_DEBIAN_MIRROR)")
    prov.add_argument("sources", nargs="+", metavar="SUITE|PATH|podman:SUITE|compose",
                      help="a Debian suite (bullseye, bookworm, trixie, sid) for its Docker, a dockerd binary/bundle "
                           "directory, podman:SUITE (trixie, forky, sid, experimental) for that suite's Podman in a "
                           "root of the suite, started once to see that it runs here, or 'compose' (Compose v2 for "
                           "the air-gap scenario, when the machine has none)")

    eng = sub.add_parser("engine", help="say which engine answers and what it is")
    eng.add_argument("--docker-host", help="engine endpoint (default: DOCKER_HOST or the local socket)")

    args = parser.parse_args(argv)
    try:
        return {"inspect": _inspect, "diff": _diff, "extract": _extract, "report": _report, "gc": _gc,
                "provision": _provision, "engine": _engine}[args.command](args)
    except SaveexportError as exc:
        print(f"saveexport: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saveexport: interrupted", file=sys.stderr)
        return 130


def _inspect(args) -> int:
    from .archives import ROOTFS, Archive
    from .archives.plot import layers_png
    from .archives.summary import inspect_archive

    summary = inspect_archive(Archive(args.archive, hash_layers=not args.no_digests, read_layers=not args.metadata))
    if args.plot and summary.get("images") and not args.metadata:
        layers_png(summary, args.plot)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        from .archives.text import render_inspect

        print(render_inspect(summary))
        violations = summary["violations"]
        if summary["layout"] == ROOTFS:  # the shared renderer lists violations for image archives only
            print(f"\nverification: {'ok' if not violations else f'{len(violations)} violation(s)'}")
            for v in violations:
                print(f"  {v['code']}: {v['member']}: {v['detail']}")
        for note in summary.get("notes") or []:
            print(f"note: {note}")
        if args.metadata:
            print("metadata only: nothing was verified")
        if args.plot and summary.get("images") and not args.metadata:
            print(f"plot: {args.plot}")
    return 1 if summary["violations"] else 0


def _diff(args) -> int:
    from .archives import ROOTFS, Archive
    from .archives.summary import diff_archives

    save, export = Archive(args.save), Archive(args.export)
    if save.layout == ROOTFS:
        raise ArchiveError(f"{args.save} is an export (a flat root), not a save archive; give the save archive first")
    if export.layout != ROOTFS:
        raise ArchiveError(f"{args.export} is an image archive ({export.layout}), not an export")
    if not 1 <= args.image <= len(save.images):
        raise ArchiveError(f"{args.save} holds {len(save.images)} image(s); --image {args.image} is not one of them")
    summary = diff_archives(save, export, args.image - 1)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        from .archives.text import render_diff

        print(render_diff(summary))
    return 0


def _extract(args) -> int:
    from .archives import Archive
    from .archives.extract import extract

    result = extract(Archive(args.archive), args.target, args.image - 1)
    print(f"saveexport: extracted {result.written:,} entries into {result.target}"
          + (f"; applied {result.removed_by_whiteouts:,} whiteouts" if result.removed_by_whiteouts else ""))
    for member, why in result.refused:
        print(f"saveexport: refused {member!r}: {why}", file=sys.stderr)
    return 1 if result.refused else 0


def _report(args) -> int:
    """Render (and merge) evidence; 1 when --baseline finds a change or fewer than --expect engines arrived,
    the report written either way, so the job that fails still shows what did arrive."""
    from . import reporting
    from .baseline import compare, readable
    from .evidence import load, merge
    from .reporting.common import user_path

    documents = [load(path) for path in args.evidence]
    sources = [user_path(path) for path in args.evidence]
    document = merge(documents, sources) if len(documents) > 1 else documents[0]
    status = 0
    if args.baseline:
        changes, notes = compare(load(args.baseline), document)
        document["baseline"] = {"file": user_path(args.baseline), "changes": changes, "notes": notes}
        for line, _ in readable(changes, notes):
            print(line, file=sys.stderr)  # as pytest's terminal summary shows it
        status = 1 if changes else status
    for warning in document.get("merge_warnings") or []:
        print(f"saveexport: warning: {warning}", file=sys.stderr)
    if args.evidence_out:
        args.evidence_out.parent.mkdir(parents=True, exist_ok=True)
        args.evidence_out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        plots = reporting.draw_plots(document, args.output.parent)
        page = args.output.suffix.lower() in (".html", ".htm")
        args.output.write_text(reporting.render_page(document, args.output.parent) if page
                               else reporting.render_markdown(document), encoding="utf-8")
        print(f"saveexport: wrote {args.output}" + "".join(f" and {p}" for p in plots))
    else:
        sys.stdout.write(reporting.render_markdown(document))
    if args.summary:
        reporting.write_summary(document, args.summary)
    arrived = [e.get("label") for e in document.get("engines") or []]
    if args.expect is not None and len(arrived) < args.expect:
        print(f"saveexport: expected {args.expect} engines, {len(arrived)} arrived ({', '.join(arrived) or 'none'}): "
              f"a job died before its evidence was uploaded?", file=sys.stderr)
        status = 1
    return status


def _gc(args) -> int:
    from .engines import Engine
    from .isolation import CACHE_PREFIX, sweep

    import os

    if os.geteuid() == 0:  # private engines are root's: what dead runs left of them on this host
        from .dead_runs import sweep as sweep_host

        for line in sweep_host():
            print(f"saveexport: removed {line} (left by a run that died)")
    engine = Engine.connect(args.docker_host)
    problems = sweep(engine, run_id=None, owns_tag=lambda tag: bool(RUN_TAG.match(tag)))
    if args.cache:
        from .podman_roots import remove_roots

        for line in remove_roots():
            print(f"saveexport: {line}")
        for image in engine.api.images():
            for tag in image.get("RepoTags") or ():
                if tag.startswith(CACHE_PREFIX):
                    engine.api.remove_image(tag)
    for problem in problems:
        print(f"saveexport: {problem}", file=sys.stderr)
    print(f"saveexport: cleaned {engine.endpoint}" + (" (cache too)" if args.cache else ""))
    return 1 if problems else 0


def _provision(args) -> int:
    import os

    from .compose import find_compose
    from .debian_mirror import choose
    from .provision import SUITES, fetch_suite, from_bundle

    if args.debian_mirror:
        mirrors = choose(args.debian_mirror, "--debian-mirror")
    elif os.environ.get("SAVEEXPORT_DEBIAN_MIRROR"):
        mirrors = choose(os.environ["SAVEEXPORT_DEBIAN_MIRROR"], "SAVEEXPORT_DEBIAN_MIRROR")
    else:
        mirrors = choose()
    failed = 0
    for source in args.sources:
        if source.startswith("podman:"):
            from .errors import EngineUnavailable
            from .podman_roots import provision

            try:
                print(provision(source.partition(":")[2], mirrors=mirrors))
            except EngineUnavailable as exc:  # made, but it cannot run here: say why, go on with the others
                print(f"saveexport: {exc}", file=sys.stderr)
                failed += 1
            continue
        if source == "compose":
            compose = find_compose(mirrors=mirrors)
            print(f"Compose {compose.version}: {' '.join(compose.argv)} ({compose.source})")
            continue
        build = fetch_suite(source, mirrors=mirrors) if source in SUITES else from_bundle(source)
        value = f"docker:{source}" if source in SUITES else f"dockerd:{source}"
        major = int(build.version.split(".")[0]) if build.version.split(".")[0].isdigit() else 0
        floor = f", {value}+min-api=1.44" if major >= 25 else ""  # DOCKER_MIN_API_VERSION: Docker 25 and later
        print(f"{build.version}: {build.dockerd} ({build.source}); use --saveexport-engine {value}"
              f" (or {value}+containerd{floor})")
    if mirrors.asked:
        print(f"saveexport: {mirrors.describe()}" + "".join(f"; {suite} from {m.uri}" for suite, m in mirrors.used.items()))
        for line in mirrors.skipped:
            print(f"saveexport: not taken: {line}")
    else:
        print("saveexport: every build asked for was already in the cache; no Debian mirror was asked")
    return 1 if failed else 0


def _engine(args) -> int:
    from .engines import Engine

    engine = Engine.connect(args.docker_host)
    facts = engine.facts
    print(f"{facts.label}: {facts.kind} {facts.version}, API {facts.min_api_version} to {facts.api_version} "
          f"(spoken: {facts.client_api_version}), storage {facts.storage_driver}, "
          f"image store {facts.image_store}, at {facts.endpoint}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
