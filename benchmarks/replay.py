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
from saveexport.host_state import STOP_GRACE_S as STOP_S  # noqa: E402  SIGKILL after this long, as the suite


class Script:
    def __init__(self, main: str = "") -> None:
        self.lines = ["#!/usr/bin/env bash", "# replayed from a saveexport call record: the same engine calls, as "
                      "docker CLI commands", 'here=$(mktemp -d)', "running=''  # the stop functions of engines it started",
                      'trap \'for stop in $running; do $stop; done; rm -rf "$here"\' EXIT',
                      "# SIGTERM, then SIGKILL after $2 s, as PrivateDockerd.stop ends its daemon: a daemon that ignores",
                      "# SIGTERM cannot hang the script",
                      'end_within() { kill -TERM "$1" 2>/dev/null || return 0; local n=$(( $2 * 10 ))',
                      '  while [ "$n" -gt 0 ] && kill -0 "$1" 2>/dev/null; do sleep 0.1; n=$(( n - 1 )); done',
                      '  kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 0; }', ""]
        self.names: dict[str, str] = {}  # an id the run got back -> its shell variable
        self.files: dict[str, str] = {}  # a file the run wrote or read -> the script's own
        self.skipped: dict[str, int] = {}
        self.skipped_in: set[str] = set()  # the tests a call was not replayed of
        self.contexts = 0
        self.main = main  # the engine plain `docker` speaks to; another one's calls get `-H`
        self.host = ""  # the endpoint of the call being written, when it is not the main one
        self.engines: dict[str, int] = {}  # a private engine's name -> its number in the script
        self.test: str | None = None

    def docker(self, command: str) -> str:
        """A docker command aimed at the engine of the call being written."""
        if self.host and command.startswith("docker "):
            return f"docker -H {shlex.quote(self.host)} " + command[len("docker "):]
        return command

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
            self.lines.append(f"{variable}=$({self.docker(command)} 2>/dev/null)")
            self.lines.append(f'echo "${variable}" >> "$here/made-objects"')
        else:
            self.emit(command)

    def emit(self, command: str) -> None:
        self.lines.append(f"{self.docker(command)} >/dev/null 2>&1 || true")

    def emit_image(self, command: str, *, load: bool = False) -> None:
        """An import or load: the id it prints is noted, for the cleanup (the record's ids are not the
        replay's, and an imported image carries no label)."""
        keep = " | sed -n 's/^Loaded image ID: //p'" if load else ""
        self.lines.append(f'{self.docker(command)} 2>/dev/null{keep} >> "$here/made-images" || true')

    def skip(self, entry: dict) -> None:
        key = f"{entry['method']} {entry['path']}"
        self.skipped[key] = self.skipped.get(key, 0) + 1
        self.skipped_in.add(self.test or "")
        self.lines.append(f"# not replayed: {key}")

    def unpack(self, data: str, stem: str) -> str:
        """A body the record kept whole (base64), written to a file of the script's own: its shell word."""
        self.contexts += 1
        path = f'"$here/{stem}-{self.contexts}.tar"'
        self.lines.append(f"echo {data} | base64 -d > {path}")
        return path

    def source(self, entry: dict, default: str) -> str:
        """The file a load or import read: noted by the suite (calls.note), the file docker-py streamed, or
        a small body the record kept whole, written out first."""
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        if not entry.get("file") and "base64" in body:
            return self.unpack(body["base64"], "upload")
        return self.file(entry.get("file") or body.get("file") or default, written=False)

    def start_engine(self, facts: dict) -> None:
        """A private dockerd started as PrivateDockerd.start does (daemons.py): its directories, bridge and
        FORWARD rules, configuration files, own containerd, the daemon, and a wait until it answers; with a
        function that stops it as PrivateDockerd.stop does (also at the script's exit, if still up). Its
        paths are the run's own: the run removed them when it stopped the engine."""
        number = self.engines[facts["name"]] = len(self.engines) + 1
        ns = ["nsenter", f"--net=/run/netns/{facts['netns']}", "--"] if facts.get("netns") else []
        run = lambda argv: shlex.join([*ns, *argv])  # noqa: E731
        bridge, comment = facts["bridge"], facts["rule_comment"]
        rules = [["FORWARD", "-s", net, "-d", net, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]
                 for net in facts["nets"]]
        containerd = facts.get("containerd")
        env = shlex.join(["env", *[f"{k}={v}" for k, v in facts["dockerd"]["env"].items()]])
        lines = [f"# a private engine, as the run started it: {facts['name']}",
                 "mkdir -p " + shlex.join(facts["dirs"] + (containerd["dirs"] if containerd else [])),
                 f"{run(['ip', 'link', 'del', bridge])} >/dev/null 2>&1",
                 f"{run(['ip', 'link', 'add', bridge, 'type', 'bridge'])} && "
                 f"{run(['ip', 'addr', 'add', facts['bridge_address'], 'dev', bridge])} && "
                 f"{run(['ip', 'link', 'set', bridge, 'up'])}",
                 *[f"command -v iptables >/dev/null && {{ {run(['iptables', '-w', '-C', *rule])} 2>/dev/null || "
                   f"{run(['iptables', '-w', '-I', *rule])}; }}" for rule in rules]]
        for path, text in facts["files"].items():
            lines += [f"cat > {shlex.quote(path)} <<'SAVEEXPORT_EOF'", text.rstrip("\n"), "SAVEEXPORT_EOF"]
        if containerd:
            address = shlex.quote(containerd["address"])
            lines += [f"rm -f {address}",
                      f'{env} setsid {shlex.join(containerd["argv"])} >"$here/engine-{number}-containerd.log" 2>&1 '
                      f"</dev/null & engine{number}_containerd=$!",
                      f"for _ in $(seq 300); do [ -S {address} ] && break; sleep 0.1; done"]
        endpoint = shlex.quote(facts["endpoint"])
        lines += [f'{env} setsid {shlex.join(facts["dockerd"]["argv"])} >"$here/engine-{number}.log" 2>&1 '
                  f"</dev/null & engine{number}=$!",
                  f"running=\"$running stop_engine{number}\"",
                  f"for _ in $(seq 200); do docker -H {endpoint} version >/dev/null 2>&1 && break; sleep 0.3; done",
                  f"docker -H {endpoint} version >/dev/null 2>&1 || "
                  f"echo \"replay: the private engine {facts['name']} did not answer (log: $here/engine-{number}.log)\" >&2"]
        prefix = facts["nets"][1].split(".0.0/")[0].replace(".", "\\.") + "\\."
        stop = [f"stop_engine{number}() {{",
                f"  running=${{running/ stop_engine{number}/}}",
                f"  end_within \"$engine{number}\" {STOP_S}",
                *([f"  end_within \"$engine{number}_containerd\" {STOP_S}"] if containerd else []),
                # its shims (kill_using), the mounts left below its roots, its trees, bridges and rules
                f"  pkill -KILL -f -- {shlex.quote(facts['dirs'][2] + '([/ :,=]|$)')} 2>/dev/null",
                "  awk '{print $2}' /proc/mounts | grep -E "
                + shlex.quote("^(" + "|".join(p.replace(".", "\\.") for p in facts["remove"][:2]) + ")/")
                + " | sort -r | xargs -r -n1 umount -l 2>/dev/null",
                "  rm -rf " + shlex.join(facts["remove"]),
                f"  {run(['ip', 'link', 'del', bridge])} >/dev/null 2>&1",
                f"  {run(['ip', '-4', '-o', 'addr', 'show'])} | awk '$4 ~ /^{prefix}/ && $2 ~ /^br-/ {{print $2}}' | "
                f"sort -u | while read -r b; do {run(['ip', 'link', 'del'])} \"$b\"; done",
                *[f"  while {run(['iptables', '-w', '-C', *rule])} 2>/dev/null; do "
                  f"{run(['iptables', '-w', '-D', *rule])}; done" for rule in rules],
                "  return 0",
                "}"]
        self.lines += stop + lines

    def stop_engine(self, facts: dict) -> None:
        number = self.engines.get(facts.get("name", ""))
        if number is None:
            self.lines.append(f"# not replayed: the stop of an engine the record did not start ({facts.get('name')})")
            return
        self.lines.append(f"stop_engine{number}")

    def find(self, entry: dict, command: str) -> None:
        """A listing: when it found one container the run then named by id, the replay finds it the same way."""
        found = entry.get("found") or []
        if len(found) == 1 and entry["path"] == "/containers/json" and found[0] not in self.names:
            variable = f"id{len(self.names) + 1}"
            self.names[found[0]] = variable
            self.lines.append(f"{variable}=$({self.docker(command)} 2>/dev/null | head -n 1)")
        else:
            self.emit(command)


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


def _filters(params: dict) -> list[str]:
    """A listing's filters as --filter words (docker-py sends them as one JSON string)."""
    raw = params.get("filters")
    try:
        filters = json.loads(raw) if isinstance(raw, str) else raw or {}
    except ValueError:
        return []
    words = []
    for key, values in filters.items():
        for value in values if isinstance(values, list) else list(values) if isinstance(values, dict) else [values]:
            words += ["--filter", f"{key}={value}"]
    return words


def _all(params: dict) -> list[str]:
    return ["-a"] if str(params.get("all")).lower() in ("true", "1") else []


def _changes(params: dict) -> list[str]:
    changes = params.get("changes") or []
    return [word for change in ([changes] if isinstance(changes, str) else changes) for word in ("--change", change)]


def _line(script: Script, entry: dict) -> None:
    method, path, params = entry["method"], entry["path"], entry.get("params") or {}
    parts = [unquote(part) for part in path.strip("/").split("/")]
    body = entry.get("body") or {}
    if method == "SLEEP":
        script.lines.append(f"sleep {float(entry.get('seconds') or 0):g}")
    elif method == "CLI":
        script.lines.append(f"{entry['command']} >/dev/null 2>&1 || true")
    elif method == "ENGINE" and path == "start":
        script.start_engine(entry["engine"])
    elif method == "ENGINE" and path == "stop":
        script.stop_engine(entry["engine"])
    elif path in ("/_ping", "/version"):
        script.emit("docker version")
    elif path == "/info":
        script.emit("docker info")
    elif path == "/system/df":
        script.emit("docker system df")
    elif path == "/images/json":
        script.find(entry, shlex.join(["docker", "images", "-q", "--no-trunc", *_all(params), *_filters(params)]))
    elif path == "/containers/json":
        script.find(entry, shlex.join(["docker", "ps", "-q", "--no-trunc", *_all(params), *_filters(params)]))
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
        script.emit_image(f"docker load -i {script.source(entry, 'load.tar')}", load=True)
    elif method == "POST" and path == "/images/create" and params.get("fromSrc") == "-":
        target = params.get("repo", "") + (":" + params["tag"] if params.get("tag") and params.get("repo") else "")
        message = ["--message", params["message"]] if params.get("message") else []
        script.emit_image(shlex.join(["docker", "import", *_changes(params), *message]) + " "
                    + script.source(entry, "import.tar")
                    + (" " + shlex.quote(target) if target else ""))
    elif method == "POST" and path == "/images/create" and params.get("fromImage"):
        tag = params.get("tag")
        script.emit(f"docker pull {shlex.quote(params['fromImage'] + (':' + tag if tag else ''))}")
    elif method == "GET" and len(parts) >= 3 and parts[0] == "images" and parts[-1] == "history":
        script.emit(f"docker history -q --no-trunc {script.ref('/'.join(parts[1:-1]))}")
    elif method == "GET" and len(parts) == 3 and parts[0] == "containers" and parts[2] == "changes":
        script.emit(f"docker diff {script.ref(parts[1])}")
    elif method == "PUT" and len(parts) == 3 and parts[0] == "containers" and parts[2] == "archive" \
            and "base64" in body:
        upload = script.unpack(body["base64"], "upload")
        script.emit(f"docker cp - {script.ref(parts[1])}:{shlex.quote(params.get('path', '/'))} < {upload}")
    elif method == "POST" and path == "/commit":
        target = params.get("repo", "") + (":" + params["tag"] if params.get("tag") and params.get("repo") else "")
        script.made(entry, shlex.join(["docker", "commit", *_changes(params)]) + " "
                    + script.ref(params.get("container", "?")) + (" " + shlex.quote(target) if target else ""))
    elif method == "POST" and path == "/build" and "base64" in body:
        context = script.unpack(body["base64"], "context")
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


def started_endpoints(entries: list[dict]) -> set[str]:
    """The engines the record started (and the script starts too)."""
    return {entry.get("endpoint", "") for entry in entries if entry["method"] == "ENGINE" and entry["path"] == "start"}


def main_endpoint(entries: list[dict]) -> str:
    """The engine most calls went to, of those the record did not start: the one the script's plain
    `docker` speaks to (one it started has a socket of its own)."""
    started = started_endpoints(entries)
    counted: dict[str, int] = {}
    for entry in entries:
        if entry.get("endpoint") and entry["method"] not in ("ENGINE", "SLEEP", "CLI") \
                and entry["endpoint"] not in started:
            counted[entry["endpoint"]] = counted.get(entry["endpoint"], 0) + 1
    return max(counted, key=counted.get, default="")


def replay(entries: list[dict]) -> Script:
    script = Script(main_endpoint(entries))
    runs = set()
    test = None
    for entry in entries:
        if entry.get("test") and entry["test"] != test:
            test = script.test = entry["test"]
            script.lines.append(f'printf "%s %s\\n" "$(date +%s.%N)" {shlex.quote(test)} '
                                f'>> "${{SAVEEXPORT_REPLAY_TIMES:-/dev/null}}"')
        endpoint = entry.get("endpoint") or ""
        script.host = endpoint if endpoint and endpoint != script.main and entry["method"] not in ("ENGINE",) else ""
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
