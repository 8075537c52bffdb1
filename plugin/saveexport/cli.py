"""`saveexport report | gc | engine`: the parts of the suite that need no pytest run.

Every failure prints one line (`saveexport: ...`) and exits 2; nothing prints a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import __version__
from . import report as report_module
from .engines import Engine
from .errors import SaveexportError
from .isolation import CACHE_PREFIX, sweep

RUN_TAG = re.compile(r"^saveexport-[0-9a-f]{8}-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="saveexport", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"saveexport {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("report", help="re-render the Markdown report from an evidence JSON file")
    rep.add_argument("evidence", type=Path, help="saveexport-evidence.json")
    rep.add_argument("-o", "--output", type=Path, help="where to write the Markdown (default: stdout)")

    gc = sub.add_parser("gc", help="remove what interrupted runs left on an engine (never anything else)")
    gc.add_argument("--docker-host", help="engine endpoint (default: DOCKER_HOST or the local socket)")
    gc.add_argument("--cache", action="store_true", help="also remove the cached offline builds (saveexport-cache-*)")

    eng = sub.add_parser("engine", help="say which engine answers and what it is")
    eng.add_argument("--docker-host", help="engine endpoint (default: DOCKER_HOST or the local socket)")

    args = parser.parse_args(argv)
    try:
        return {"report": _report, "gc": _gc, "engine": _engine}[args.command](args)
    except SaveexportError as exc:
        print(f"saveexport: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saveexport: interrupted", file=sys.stderr)
        return 130


def _report(args) -> int:
    document = report_module.load(args.evidence)
    text = report_module.render_markdown(document)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"saveexport: wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _gc(args) -> int:
    engine = Engine.connect(args.docker_host)
    problems = sweep(engine, run_id=None, owns_tag=lambda tag: bool(RUN_TAG.match(tag)))
    if args.cache:
        for image in engine.api.images():
            for tag in image.get("RepoTags") or ():
                if tag.startswith(CACHE_PREFIX):
                    engine.api.remove_image(tag)
    for problem in problems:
        print(f"saveexport: {problem}", file=sys.stderr)
    print(f"saveexport: cleaned {engine.endpoint}" + (" (cache too)" if args.cache else ""))
    return 1 if problems else 0


def _engine(args) -> int:
    engine = Engine.connect(args.docker_host)
    facts = engine.facts
    print(f"{facts.label}: {facts.kind} {facts.version}, API {facts.api_version}, storage {facts.storage_driver}, "
          f"image store {facts.image_store}, at {facts.endpoint}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
