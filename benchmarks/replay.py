"""The floor the suite's speed is measured against: a record of every engine call a run made
(`--saveexport-record-calls DIR`, calls.py), replayed as a plain shell script of docker CLI commands.
Both then do the same engine work by construction; the benchmark times the suite and the script side by
side on one engine.

    python benchmarks/replay.py DIR/calls-main.jsonl -o replay.sh   # one engine, one process (no -n)

Ids the run got back (created containers, commits, execs) become shell variables; archives go to and
come from files of the script's own directory, named after the run's. The suite's deliberate waits (a
poll's interval, watching a container settle: calls.pause) are sleeps of the same length, so a poll
makes as many calls with as long between them. Where a test starts, the script appends the time and the
test's id to $SAVEEXPORT_REPLAY_TIMES, if set, for a per-test comparison. A call with no CLI equivalent is a
comment in the script and counted on stderr, so a replay that does less than the run says so.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))

from saveexport.calls import read  # noqa: E402


class Script:
    def __init__(self) -> None:
        self.lines = ["#!/usr/bin/env bash", "# replayed from a saveexport call record: the same engine calls, as "
                      "docker CLI commands", 'here=$(mktemp -d)', 'trap \'rm -rf "$here"\' EXIT', ""]
        self.names: dict[str, str] = {}  # an id the run got back -> its shell variable
        self.files: dict[str, str] = {}  # a file the run wrote or read -> the script's own
        self.skipped: dict[str, int] = {}
        self.contexts = 0

    def ref(self, value: str) -> str:
        """A container/image/exec the run named: its variable when the run made it, else the name quoted."""
        value = unquote(value)
        for known, variable in self.names.items():
            if value == known or (len(value) >= 12 and known.startswith(value)):
                return f'"${variable}"'
        return shlex.quote(value)

    def file(self, path: str, written: bool = True) -> str:
        """Where an archive goes (`written`) or comes from. One the script wrote earlier is its own copy; one
        the run made without the engine (a root tarred in Python, a layer of a test's own) is read where the
        run left it, so keep the run's files (`--basetemp`) until the script has run."""
        if not written and path not in self.files:
            return shlex.quote(path)
        self.files.setdefault(path, f"archive-{len(self.files) + 1}-{Path(path).name}")
        return f'"$here/{self.files[path]}"'

    def made(self, entry: dict, command: str) -> None:
        if entry.get("made"):
            variable = f"id{len(self.names) + 1}"
            self.names[entry["made"]] = variable
            self.lines.append(f"{variable}=$({command} 2>/dev/null)")
            self.lines.append(f'echo "${variable}" >> "$here/made-objects"')
        else:
            self.emit(command)

    def emit(self, command: str) -> None:
        self.lines.append(f"{command} >/dev/null 2>&1 || true")

    def emit_image(self, command: str, *, load: bool = False) -> None:
        """An import or load: the id it prints is noted, for the cleanup (the record's ids are not the
        replay's, and an imported image carries no label)."""
        keep = " | sed -n 's/^Loaded image ID: //p'" if load else ""
        self.lines.append(f'{command} 2>/dev/null{keep} >> "$here/made-images" || true')

    def skip(self, entry: dict) -> None:
        key = f"{entry['method']} {entry['path']}"
        self.skipped[key] = self.skipped.get(key, 0) + 1
        self.lines.append(f"# not replayed: {key}")


def _create(body: dict, params: dict) -> str:
    argv = ["docker", "create"]
    if params.get("name"):
        argv += ["--name", params["name"]]
    for key, value in (body.get("Labels") or {}).items():
        argv += ["--label", f"{key}={value}"]
    for pair in body.get("Env") or []:
        argv += ["-e", pair]
    host = body.get("HostConfig") or {}
    if host.get("NetworkMode") and host["NetworkMode"] != "default":
        argv += ["--network", host["NetworkMode"]]
    entrypoint = body.get("Entrypoint")
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
    if body.get("User"):
        argv += ["--user", body["User"]]
    argv.append(body.get("Image", "?"))
    argv += (entrypoint or [])[1:] + list(body.get("Cmd") or [])
    return shlex.join(argv)


def _changes(params: dict) -> list[str]:
    changes = params.get("changes") or []
    return [word for change in ([changes] if isinstance(changes, str) else changes) for word in ("--change", change)]


def _line(script: Script, entry: dict) -> None:
    method, path, params = entry["method"], entry["path"], entry.get("params") or {}
    parts = [unquote(part) for part in path.strip("/").split("/")]
    body = entry.get("body") or {}
    if method == "SLEEP":
        script.lines.append(f"sleep {float(entry.get('seconds') or 0):g}")
    elif path in ("/_ping", "/version"):
        script.emit("docker version")
    elif path == "/info":
        script.emit("docker info")
    elif path == "/system/df":
        script.emit("docker system df")
    elif path == "/images/json":
        script.emit("docker images -a -q")
    elif path == "/containers/json":
        script.emit("docker ps -a -q")
    elif path == "/networks":
        script.emit("docker network ls -q")
    elif path == "/volumes":
        script.emit("docker volume ls -q")
    elif method == "POST" and path == "/containers/create":
        script.made(entry, _create(body, params))
    elif method == "GET" and len(parts) == 3 and parts[0] in ("containers", "images", "exec") and parts[2] == "json":
        kind = {"containers": "container", "images": "image"}.get(parts[0])
        script.emit(f"docker {kind} inspect {script.ref(parts[1])}" if kind else ": exec inspect")
    elif method == "POST" and len(parts) == 3 and parts[0] == "containers" and parts[2] in ("start", "stop", "kill",
                                                                                            "wait", "restart"):
        script.emit(f"docker {parts[2]} {script.ref(parts[1])}")
    elif method == "DELETE" and len(parts) == 2 and parts[0] == "containers":
        script.emit(f"docker rm -f -v {script.ref(parts[1])}")
    elif method == "DELETE" and len(parts) >= 2 and parts[0] == "images":
        script.emit(f"docker rmi -f {script.ref('/'.join(parts[1:]))}")
    elif method == "POST" and len(parts) >= 3 and parts[0] == "images" and parts[-1] == "tag":
        script.emit(f"docker tag {script.ref('/'.join(parts[1:-1]))} "
                    f"{shlex.quote(params.get('repo', '') + (':' + params['tag'] if params.get('tag') else ''))}")
    elif method == "GET" and len(parts) == 3 and parts[0] == "containers" and parts[2] == "logs":
        script.emit(f"docker logs {script.ref(parts[1])}")
    elif method == "GET" and path == "/images/get":
        names = params.get("names") or []
        script.emit(f"docker save -o {script.file(entry.get('file') or 'save.tar')} "
                    + " ".join(shlex.quote(n) for n in ([names] if isinstance(names, str) else names)))
    elif method == "GET" and len(parts) == 3 and parts[0] == "containers" and parts[2] == "export":
        script.emit(f"docker export -o {script.file(entry.get('file') or 'export.tar')} {script.ref(parts[1])}")
    elif method == "POST" and path == "/images/load":
        script.emit_image(f"docker load -i {script.file(entry.get('file') or 'load.tar', written=False)}", load=True)
    elif method == "POST" and path == "/images/create" and params.get("fromSrc") == "-":
        target = params.get("repo", "") + (":" + params["tag"] if params.get("tag") and params.get("repo") else "")
        message = ["--message", params["message"]] if params.get("message") else []
        script.emit_image(shlex.join(["docker", "import", *_changes(params), *message]) + " "
                    + script.file(entry.get("file") or "import.tar", written=False)
                    + (" " + shlex.quote(target) if target else ""))
    elif method == "POST" and path == "/commit":
        target = params.get("repo", "") + (":" + params["tag"] if params.get("tag") and params.get("repo") else "")
        script.made(entry, shlex.join(["docker", "commit", *_changes(params)]) + " "
                    + script.ref(params.get("container", "?")) + (" " + shlex.quote(target) if target else ""))
    elif method == "POST" and path == "/build" and "base64" in body:
        script.contexts += 1
        context = f'"$here/context-{script.contexts}.tar"'
        script.lines.append(f"echo {body['base64']} | base64 -d > {context}")
        labels = json.loads(params["labels"]) if isinstance(params.get("labels"), str) else params.get("labels") or {}
        argv = ["docker", "build", *(["-t", params["t"]] if params.get("t") else []),
                # as the suite builds: a failed step's container goes too
                *(["--force-rm"] if str(params.get("forcerm")).lower() in ("true", "1") else []),
                *[word for key, value in labels.items() for word in ("--label", f"{key}={value}")]]
        script.emit(shlex.join(argv) + f" - < {context}")
    elif method == "POST" and len(parts) == 3 and parts[0] == "containers" and parts[2] == "exec":
        cmd = body.get("Cmd") or []
        user = ["--user", body["User"]] if body.get("User") else []
        script.emit(shlex.join(["docker", "exec", *user]) + f" {script.ref(parts[1])} " + shlex.join(cmd))
    elif method == "POST" and len(parts) == 3 and parts[0] == "exec" and parts[2] == "start":
        script.lines.append("# exec start: run by the docker exec above")
    elif method == "HEAD" and len(parts) == 3 and parts[2] == "archive":
        script.emit(f"docker container inspect {script.ref(parts[1])}")  # a stat; the nearest CLI call asks inspect
    elif method == "GET" and len(parts) == 3 and parts[0] == "containers" and parts[2] == "archive":
        script.emit(f"docker cp {script.ref(parts[1])}:{shlex.quote(params.get('path', '/'))} -")
    else:
        script.skip(entry)


def replay(entries: list[dict]) -> Script:
    script = Script()
    runs = set()
    test = None
    for entry in entries:
        if entry.get("test") and entry["test"] != test:
            test = entry["test"]
            script.lines.append(f'printf "%s %s\\n" "$(date +%s.%N)" {shlex.quote(test)} '
                                f'>> "${{SAVEEXPORT_REPLAY_TIMES:-/dev/null}}"')
        _line(script, entry)
        labels = (entry.get("params") or {}).get("labels")
        labels = json.loads(labels) if isinstance(labels, str) else labels or {}
        runs.update(v for k, v in {**labels, **((entry.get("body") or {}).get("Labels") or {})}.items()
                    if k == "io.saveexport.run")
    script.lines.append('printf "%s %s\\n" "$(date +%s.%N)" "(end)" >> "${SAVEEXPORT_REPLAY_TIMES:-/dev/null}"')
    # what the replay made under ids the record cannot know (an image the run removed by its own id, a
    # build step's container, an import whose tag a later one took): removed by the ids the replay noted,
    # by the run's label and by the run's names, as the suite's cleanup does
    script.lines.append('[ -s "$here/made-objects" ] && xargs -r docker rm -f -v < "$here/made-objects" >/dev/null 2>&1')
    for run in sorted(runs):
        script.lines.append(f"docker ps -a -q --filter label=io.saveexport.run={shlex.quote(run)} | "
                            f"xargs -r docker rm -f -v >/dev/null 2>&1 || true")
    script.lines.append('cat "$here"/made-* 2>/dev/null | xargs -r docker rmi -f >/dev/null 2>&1')
    for run in sorted(runs):
        script.lines.append(f"docker images -q --filter label=io.saveexport.run={shlex.quote(run)} | "
                            f"xargs -r docker rmi -f >/dev/null 2>&1 || true")
        script.lines.append(f"docker images -q --filter reference={shlex.quote(f'saveexport-{run}-*')} | "
                            f"xargs -r docker rmi -f >/dev/null 2>&1 || true")
    script.lines.append("true")
    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", type=Path, help="calls-*.jsonl of one engine's run")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the shell script to write")
    args = parser.parse_args(argv)
    script = replay(read(args.records))
    args.output.write_text("\n".join(script.lines) + "\n")
    args.output.chmod(0o755)
    replayed = sum(1 for line in script.lines if line.endswith("|| true") or line.startswith("id"))
    print(f"replay: {replayed} docker commands in {args.output}"
          + (f"; not replayed: {', '.join(f'{k} ×{n}' for k, n in sorted(script.skipped.items()))}"
             if script.skipped else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
