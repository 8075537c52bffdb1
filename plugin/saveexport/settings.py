"""The plugin's options: one group, one prefix, each with an ini twin and an environment variable.

Precedence: command line > SAVEEXPORT_* environment variable > ini file > default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from .engines import DEFAULT_TIMEOUT_S
from .operations import DEFAULT_STALL_S
from .errors import UsageError
from .subject import DEFAULT_IMAGE, DEFAULT_SECOND_IMAGE, DEFAULT_SUITE, SOURCES, default_cache_dir

# name -> (help, default, kind); kind is "str", "int", "bool" or a tuple of choices
OPTIONS: dict[str, tuple[str, object, object]] = {
    "docker_host": ("engine endpoint (unix://, tcp://, ssh://); default: DOCKER_HOST or the local socket",
                    None, "str"),
    "engine": ("an engine to run every experiment on; repeat for a matrix: default, unix://…, tcp://…, ssh://…, "
               "docker:SUITE[+containerd][+min-api=X.Y] (Debian's docker.io of SUITE as a private daemon; "
               "+min-api raises its oldest API, as Docker 29 ships 1.44; +containerd-from=SUITE runs it on that "
               "suite's containerd), dockerd:PATH[+…], podman (the host's), podman:SUITE (that suite's, in a root "
               "of it)", ["default"], "list"),
    "image": ("the subject image the article uses", DEFAULT_IMAGE, "str"),
    "second_image": ("the second image saved with the subject in one archive (claim C1)",
                     DEFAULT_SECOND_IMAGE, "str"),
    "image_source": ("how to get the images: auto (present, else pull, else build an offline stand-in), "
                     "pull, or build", "auto", SOURCES),
    "report_dir": ("where the evidence report (Markdown + JSON) is written", "reports", "str"),
    "timeout": ("seconds one engine request may take (saving or loading hundreds of MB)",
                DEFAULT_TIMEOUT_S, "int"),
    "stall_timeout": ("seconds an archive stream may go with no bytes moving and no work by the engine's own "
                      "processes before the engine is judged hung (stopped or unresponsive)", DEFAULT_STALL_S, "int"),
    "cache_dir": ("where offline builds keep their logs and temporary roots", str(default_cache_dir()), "str"),
    "debian_suite": ("Debian suite of the offline stand-in's base root", DEFAULT_SUITE, "str"),
    "debian_mirror": ("Debian mirror for every fetch (stand-ins, engine builds, Compose, .debs); default: the "
                      "Debian archive apt's own configuration uses", None, "str"),
    "baseline": ("an evidence JSON of an earlier run: fail when an engine's behaviour differs from it",
                 None, "str"),
    "summary": ("also write the report's short text form (grid, differences, regressions) to this file, for a CI "
                "job summary; default: $GITHUB_STEP_SUMMARY when set (appended to)", None, "str"),
    "keep_archives": ("keep the save/export archives after the run (their path is reported)", False, "bool"),
    "archive_dir": ("where the run's save/export archives are written (a folder of the run's own is made below "
                    "it); default: a temporary directory", None, "str"),
    "move_dir": ("where the move matrix's archives are made (once per writer) and loaded from, shared by the "
                 "runs of its passes; default: a temporary directory of the run's own", None, "str"),
    "record_calls": ("record every request the suite makes of an engine, in order, with its test and cost, as "
                     "JSON lines in this directory (calls-<worker>.jsonl; benchmarks/ replays them)", None, "str"),
    "move_pass": ("which part of the move matrix this run does: make (each engine writes its archives), load "
                  "(each engine loads every archive in the move directory), or both (one run: the engines "
                  "of this run move to each other)", "both", ("both", "make", "load")),
}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("saveexport", "saveexport: docker save/load vs export/import, proved on real engines")
    for name, (help_text, default, kind) in OPTIONS.items():
        flag = "--saveexport-" + name.replace("_", "-")
        env = "SAVEEXPORT_" + name.upper()
        full_help = f"{help_text} [ini: saveexport_{name}; env: {env}; default: {default}]"
        if kind == "bool":
            group.addoption(flag, action="store_true", default=None, dest=f"saveexport_{name}", help=full_help)
            parser.addini(f"saveexport_{name}", help_text, type="bool", default=bool(default))
        elif kind == "list":
            group.addoption(flag, action="append", default=None, dest=f"saveexport_{name}", metavar=name.upper(),
                            help=full_help)
            parser.addini(f"saveexport_{name}", help_text, type="linelist", default=[])
        else:
            group.addoption(flag, action="store", default=None, dest=f"saveexport_{name}",
                            metavar=name.upper(), help=full_help,
                            choices=list(kind) if isinstance(kind, tuple) else None)
            parser.addini(f"saveexport_{name}", help_text, default=None)


@dataclass(frozen=True)
class Settings:
    docker_host: str | None
    engine: list[str]
    image: str
    second_image: str
    image_source: str
    report_dir: Path
    timeout: int
    stall_timeout: int
    cache_dir: Path
    debian_suite: str
    debian_mirror: str | None
    baseline: str | None
    summary: str | None
    keep_archives: bool
    archive_dir: str | None
    move_dir: str | None
    record_calls: str | None
    move_pass: str
    debian_mirror_origin: str = "apt's configuration"  # where debian_mirror came from, for the report
    summary_append: bool = False  # the summary goes to GITHUB_STEP_SUMMARY, which gathers every step's


def resolve(config: pytest.Config) -> Settings:
    values = {}
    origins = {}
    for name, (_, default, kind) in OPTIONS.items():
        value = config.getoption(f"saveexport_{name}")
        source = f"--saveexport-{name.replace('_', '-')}"
        if value is None:
            env = "SAVEEXPORT_" + name.upper()
            if os.environ.get(env):
                value, source = os.environ[env], env
            elif config.getini(f"saveexport_{name}") not in (None, "", []):
                value, source = config.getini(f"saveexport_{name}"), f"ini saveexport_{name}"
            else:
                value, source = default, "default"
        values[name] = _convert(name, value, kind, source)
        origins[name] = source
    report_dir = Path(values["report_dir"])
    if not report_dir.is_absolute():
        report_dir = Path(config.invocation_params.dir) / report_dir
    values["report_dir"] = report_dir
    values["cache_dir"] = Path(values["cache_dir"])
    if values["summary"] is None and os.environ.get("GITHUB_STEP_SUMMARY"):
        values["summary"], values["summary_append"] = os.environ["GITHUB_STEP_SUMMARY"], True
    elif values["summary"] and not Path(values["summary"]).is_absolute():
        values["summary"] = str(Path(config.invocation_params.dir) / values["summary"])
    if values["record_calls"] and not Path(values["record_calls"]).is_absolute():
        values["record_calls"] = str(Path(config.invocation_params.dir) / values["record_calls"])
    if values["debian_mirror"]:
        from .debian_mirror import explicit

        explicit(values["debian_mirror"], origins["debian_mirror"])  # a bad URL is a usage error now, not later
        values["debian_mirror_origin"] = origins["debian_mirror"]
    return Settings(**values)


def _convert(name: str, value, kind, source: str):
    if value is None:
        return None
    if kind == "list":
        items = value if isinstance(value, list) else str(value).replace(",", " ").split()
        return [str(item).strip() for item in items if str(item).strip()] or ["default"]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise UsageError(f"{source}={value!r} is not a boolean; use true or false")
    if kind == "int":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"{source}={value!r} is not a whole number of seconds") from None
        if number <= 0:
            raise UsageError(f"{source}={value!r} must be positive")
        return number
    if isinstance(kind, tuple) and value not in kind:
        raise UsageError(f"{source}={value!r} is not one of: {', '.join(kind)}")
    return str(value)
