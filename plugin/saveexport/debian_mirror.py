"""Which Debian mirror: the one named by an option, else the one the machine's own apt uses.

Air-gapped hosts reach Debian only through a mirror of their own (an internal mirror, apt-cacher-ng,
a proxy set for apt). Whatever the suite fetches (the stand-in's root, the Dockerfile builds' apt-get,
engine builds, Compose, .debs) comes from the mirror chosen here, through apt's proxy when it has one.

Debian's entries are told apart as apt does: by the Origin and Label of the archive's Release file
(`apt-cache policy` shows them as o= and l=), never by a host's name. The main archive says
Origin: Debian, Label: Debian; the security archive (Label: Debian-Security) is kept apart, and any
other repository (a nodesource entry, say) is never taken. The code keeps no mirror URL of its own.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UsageError

PROBE_TIMEOUT_S = 10
SCHEMES = ("http://", "https://")  # what apt, mmdebstrap and a build container can all fetch from


class MirrorUnavailable(UsageError):
    """No Debian mirror is configured, or none that is configured holds a suite something needs."""


@dataclass(frozen=True)
class SourceEntry:
    """One `deb` source as apt reads it: one URI, its suites, components and options."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()
    where: str = ""  # file:line, as apt's Sourcesentry names it

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name.lower())


# ---------------------------------------------------------------------------------------------------
# apt's sources: the one-line form and deb822


def parse_one_line(text: str, where: str = "sources.list") -> list[SourceEntry]:
    """`deb [opt=val …] URI SUITE [COMPONENT …]`; deb-src, comments and blank lines are skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if kind != "deb":
            continue
        options: list[tuple[str, str]] = []
        if rest.startswith("["):
            closing = rest.find("]")
            if closing < 0:
                continue  # apt refuses such a line too
            for item in rest[1:closing].split():
                key, _, value = item.partition("=")
                options.append((key.lower().rstrip("+-"), value))
            rest = rest[closing + 1:].strip()
        words = rest.split()
        if len(words) < 2:
            continue
        entries.append(SourceEntry(words[0], (words[1],), tuple(words[2:]), tuple(options), f"{where}:{number}"))
    return entries


def _stanzas(text: str):
    """deb822 paragraphs as (their number, counted from 1 as apt's Sourcesentry counts them, {field: value});
    continuation lines keep their newlines."""
    fields: dict[str, str] = {}
    count, last = 0, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                count += 1
                yield count, fields
            fields, last = {}, None
            continue
        if raw[0] in " \t" and last is not None:
            fields[last] += "\n" + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        fields[last] = value.strip()


def parse_deb822(text: str, where: str = "x.sources") -> list[SourceEntry]:
    """`Types: deb` stanzas (Enabled: no skipped); one entry per URI, in the order the URIs are given."""
    entries = []
    for number, fields in _stanzas(text):
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").strip().lower() in ("no", "false", "0"):
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        options = tuple((k, " ".join(v.split()) if k != "signed-by" else v)
                        for k, v in fields.items() if k not in ("types", "uris", "suites", "components", "enabled"))
        for uri in fields.get("uris", "").split():
            if suites:
                entries.append(SourceEntry(uri, suites, components, options, f"{where}:{number}"))
    return entries


def read_sources(source_list: Path, source_parts: Path) -> list[SourceEntry]:
    """Every deb entry in apt's order: the sources.list file, then the parts directory by name."""
    entries: list[SourceEntry] = []
    if source_list.is_file():
        entries += parse_one_line(source_list.read_text(errors="replace"), str(source_list))
    if source_parts.is_dir():
        for path in sorted(source_parts.iterdir()):
            if path.suffix == ".list" and path.is_file():
                entries += parse_one_line(path.read_text(errors="replace"), str(path))
            elif path.suffix == ".sources" and path.is_file():
                entries += parse_deb822(path.read_text(errors="replace"), str(path))
    return entries


# ---------------------------------------------------------------------------------------------------
# apt's configuration: where its files are, and its proxy


@dataclass(frozen=True)
class AptConfig:
    source_list: Path
    source_parts: Path
    lists: Path  # Dir::State::Lists: the Release files apt fetched
    proxies: dict[str, str] = field(default_factory=dict)  # "http" / "https" / "http::HOST" -> URL or DIRECT
    # how apt here judges a Release file's dates (a snapshot mirror's Valid-Until has passed): what apt-get
    # does here anyway, and mmdebstrap (whose apt reads none of the host's configuration) is told the same
    release_checks: dict[str, str] = field(default_factory=dict)

    def proxy_for(self, uri: str) -> str | None:
        """The proxy apt would use for `uri` (per host first), else the environment's; None for direct."""
        parts = urllib.parse.urlsplit(uri)
        scheme = parts.scheme
        value = self.proxies.get(f"{scheme}::{parts.hostname}") or self.proxies.get(scheme)
        if value is None:
            value = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
        if not value or value.upper() == "DIRECT":
            return None
        return value


def parse_apt_config_dump(text: str) -> dict[str, str]:
    """`apt-config dump` lines (`Key "value";`) as a flat dict; list items keep only the last."""
    values = {}
    for line in text.splitlines():
        match = re.match(r'^(\S+)\s+"(.*)";$', line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def _apt_path(values: dict[str, str], *keys: str) -> Path:
    """apt's Dir:: joining: each key's value hangs below the one before, unless it is absolute."""
    path = Path("/")
    for key in keys:
        value = values.get(key, "")
        path = Path(value) if value.startswith("/") else path / value
    return path


def apt_config(values: dict[str, str] | None = None) -> AptConfig:
    """apt's own view (`apt-config dump` honours APT_CONFIG and apt.conf.d), or Debian's defaults."""
    if values is None:
        values = {}
        if shutil.which("apt-config"):
            proc = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=30, check=False)
            if proc.returncode == 0:
                values = parse_apt_config_dump(proc.stdout)
    values = {"Dir": "/", "Dir::Etc": "etc/apt", "Dir::Etc::sourcelist": "sources.list",
              "Dir::Etc::sourceparts": "sources.list.d", "Dir::State": "var/lib/apt", "Dir::State::lists": "lists/",
              **values}
    proxies = {}
    for key, value in values.items():
        match = re.match(r"^Acquire::(https?)::Proxy(?:::(.+))?$", key)
        if match:
            proxies[match.group(1) + (f"::{match.group(2)}" if match.group(2) else "")] = value
    checks = {key: value for key, value in values.items() if key in RELEASE_CHECKS}
    return AptConfig(source_list=_apt_path(values, "Dir", "Dir::Etc", "Dir::Etc::sourcelist"),
                     source_parts=_apt_path(values, "Dir", "Dir::Etc", "Dir::Etc::sourceparts"),
                     lists=_apt_path(values, "Dir", "Dir::State", "Dir::State::lists"), proxies=proxies,
                     release_checks=checks)


RELEASE_CHECKS = ("Acquire::Check-Valid-Until", "Acquire::Check-Date", "Acquire::Max-ValidTime")


# ---------------------------------------------------------------------------------------------------
# Release files: what an archive says it is


def uri_to_filename(uri: str) -> str:
    """apt's URItoFileName: no scheme or credentials, unsafe characters %-quoted, '/' as '_'."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    text = host + urllib.parse.unquote(parts.path)  # apt un-quotes the URI before quoting it its own way
    out = []
    for ch in text:
        if ch in "\\|{}[]<>\"^~_=!@#$%&*" or ord(ch) <= 0x20 or ord(ch) >= 0x7F:
            out.append("".join(f"%{b:02x}" for b in ch.encode()))
        else:
            out.append(ch)
    return "".join(out).replace("/", "_")


def release_fields(text: str) -> dict[str, str]:
    """The first paragraph of a Release or InRelease file (a clearsigned header is skipped)."""
    lines = text.splitlines()
    if lines and lines[0].startswith("-----BEGIN PGP SIGNED MESSAGE"):
        blank = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
        lines = lines[blank + 1:]
    fields = {}
    for line in lines:
        if not line.strip() or line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        if line[0] in " \t":
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def _base(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def _cached_release(lists: Path, uri: str, suite: str) -> dict[str, str] | None:
    stem = uri_to_filename(f"{_base(uri)}dists/{suite}/")
    for name in ("InRelease", "Release"):
        path = lists / f"{stem}{name}"
        if path.is_file():
            with open(path, encoding="utf-8", errors="replace") as handle:
                return release_fields(handle.read(65536))
    return None


def fetch_release(uri: str, suite: str, proxy: str | None, timeout: float = PROBE_TIMEOUT_S) -> dict[str, str] | None:
    """The archive's own Release header, asked the way apt asks (InRelease, then Release); None if absent."""
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    for name in ("InRelease", "Release"):
        try:
            with opener.open(f"{_base(uri)}dists/{suite}/{name}", timeout=timeout) as answer:
                return release_fields(answer.read(65536).decode("utf-8", errors="replace"))
        except urllib.error.HTTPError as exc:
            if exc.code not in (403, 404, 410):
                raise OSError(f"HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OSError(str(reason)) from exc
    return None


def is_debian_archive(release: dict[str, str]) -> bool:
    return release.get("Origin") == "Debian" and release.get("Label") == "Debian"


def is_debian_security(release: dict[str, str]) -> bool:
    return release.get("Origin") == "Debian" and release.get("Label") == "Debian-Security"


# ---------------------------------------------------------------------------------------------------
# The choice


@dataclass(frozen=True)
class Mirror:
    uri: str
    origin: str  # where the choice came from: the option, or the apt entry (file:line)
    signed_by: str | None = None  # the entry's Signed-By (a keyring file) for fetches on this host

    def source_line(self, suite: str, components: tuple[str, ...] = ("main",)) -> str:
        """One-line sources entry, as apt-get and mmdebstrap take it."""
        options = f"[signed-by={self.signed_by}] " if self.signed_by else ""
        return f"deb {options}{self.uri} {suite} {' '.join(components)}"

    def to_dict(self) -> dict:
        return {"uri": self.uri, "origin": self.origin, "signed_by": self.signed_by}


class Mirrors:
    """The Debian mirrors to fetch from, in order, and what each suite was found on.

    Lazy: apt's configuration is read (and Release files asked) only when something needs a mirror,
    so a run whose builds are all cached never asks."""

    def __init__(self, load: Callable[[], tuple[list[Mirror], list[str], AptConfig, list[str]]]):
        self._load = load
        self._loaded: tuple[list[Mirror], list[str], AptConfig, list[str]] | None = None
        self._found: dict[str, Mirror] = {}

    @classmethod
    def of(cls, candidates: list[Mirror], security: list[str] | None = None, config: AptConfig | None = None,
           skipped: list[str] | None = None) -> Mirrors:
        return cls(lambda: (candidates, security or [], config or AptConfig(Path("/nonexistent"),
                                                                             Path("/nonexistent"),
                                                                             Path("/nonexistent")), skipped or []))

    def _get(self):
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    @property
    def candidates(self) -> list[Mirror]:
        return self._get()[0]

    @property
    def security(self) -> list[str]:
        return self._get()[1]

    @property
    def config(self) -> AptConfig:
        return self._get()[2]

    @property
    def skipped(self) -> list[str]:
        """Entries not taken, and why (`saveexport provision` lists them)."""
        return self._get()[3]

    def proxy_for(self, uri: str) -> str | None:
        return self.config.proxy_for(uri)

    def mmdebstrap_options(self) -> list[str]:
        """apt's own judgement of Release dates, for mmdebstrap's apt, which reads nothing of the host's."""
        return [f'--aptopt={key} "{value}"' for key, value in sorted(self.config.release_checks.items())]

    def for_suite(self, suite: str, needed_by: str) -> Mirror:
        """The first candidate that holds `suite` (asked before anything is built); one line if none does."""
        if suite in self._found:
            return self._found[suite]
        if not self.candidates:
            skipped = f" (not taken: {'; '.join(self.skipped)})" if self.skipped else ""
            raise MirrorUnavailable(f"{needed_by} needs Debian {suite}, but " + no_mirror_line() + skipped)
        tried = []
        for mirror in self.candidates:
            try:
                release = fetch_release(mirror.uri, suite, self.proxy_for(mirror.uri))
            except OSError as exc:
                tried.append(f"{mirror.uri}: {exc}")
                continue
            if release is None:
                tried.append(f"{mirror.uri} has no {suite}")
                continue
            self._found[suite] = mirror
            return mirror
        raise MirrorUnavailable(f"Debian {suite}, which {needed_by} needs, is on no mirror configured "
                                f"({'; '.join(tried)}); name one that has it with --saveexport-debian-mirror "
                                f"(saveexport provision --debian-mirror, or SAVEEXPORT_DEBIAN_MIRROR)")

    @property
    def asked(self) -> bool:
        return self._loaded is not None

    @property
    def used(self) -> dict[str, Mirror]:
        """suite -> the mirror it came from, for what this process fetched."""
        return dict(sorted(self._found.items()))

    def to_dict(self) -> dict:
        if self._loaded is None and not self._found:
            return {"asked": False}
        return {"asked": True, "candidates": [m.to_dict() for m in self.candidates], "security": list(self.security),
                "suites": {suite: m.uri for suite, m in self.used.items()},
                "proxy": {m.uri: self.proxy_for(m.uri) for m in self.candidates if self.proxy_for(m.uri)},
                "skipped": list(self.skipped)}

    def describe(self) -> str:
        if not self.candidates:
            return no_mirror_line()
        first = self.candidates[0]
        more = f" (then {', '.join(m.uri for m in self.candidates[1:])})" if len(self.candidates) > 1 else ""
        proxy = self.proxy_for(first.uri)
        return f"Debian mirror {first.uri}, from {first.origin}{more}" + (f", through proxy {proxy}" if proxy else "")


def no_mirror_line() -> str:
    return ("no Debian mirror is configured: apt's sources name no Debian archive (Origin and Label 'Debian' in "
            "its Release file); name one with --saveexport-debian-mirror URL (saveexport provision --debian-mirror, "
            "or SAVEEXPORT_DEBIAN_MIRROR)")


def _read_apt(config: AptConfig) -> tuple[list[Mirror], list[str], AptConfig, list[str]]:
    candidates: list[Mirror] = []
    security: list[str] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for entry in read_sources(config.source_list, config.source_parts):
        uri = entry.uri.rstrip("/")
        if uri in seen:
            continue
        if not uri.startswith(SCHEMES):
            skipped.append(f"{entry.where}: {entry.uri}: only http:// and https:// mirrors serve every fetch")
            continue
        release = None
        for suite in entry.suites:
            release = _cached_release(config.lists, entry.uri, suite)
            if release is None:
                try:
                    release = fetch_release(entry.uri, suite, config.proxy_for(entry.uri))
                except OSError as exc:
                    skipped.append(f"{entry.where}: {entry.uri}: its Release file could not be read ({exc})")
                    continue
            if release is not None:
                break
        if release is None:
            continue
        seen.add(uri)
        if is_debian_archive(release):
            candidates.append(Mirror(uri, f"apt's configuration ({entry.where})", _keyring(entry.option("signed-by"))))
        elif is_debian_security(release):
            security.append(uri)
        else:
            skipped.append(f"{entry.where}: {entry.uri}: Origin {release.get('Origin')!r}, Label "
                           f"{release.get('Label')!r}: not Debian's archive")
    return candidates, security, config, skipped


_INLINE_KEYS: dict[str, Path] = {}


def _keyring(signed_by: str | None) -> str | None:
    """A keyring file for a Signed-By: the file it names, or (deb822's inline key block) a file of its own.

    The file is where apt's unprivileged _apt user can read it, as mmdebstrap's apt runs as that user;
    a public key is no secret."""
    if not signed_by:
        return None
    if "BEGIN PGP PUBLIC KEY BLOCK" in signed_by:
        if signed_by not in _INLINE_KEYS:
            folder = Path(tempfile.mkdtemp(prefix="saveexport-keyring-"))
            atexit.register(shutil.rmtree, folder, True)
            folder.chmod(0o755)
            path = folder / "inline.asc"
            path.write_text(signed_by.replace("\n.\n", "\n\n").strip() + "\n")
            path.chmod(0o644)
            _INLINE_KEYS[signed_by] = path
        return str(_INLINE_KEYS[signed_by])
    first = signed_by.split()[0]
    return first if first.startswith("/") else None  # fingerprints: apt's own keyrings decide


def from_apt(config: AptConfig | None = None) -> Mirrors:
    """The Debian archive entries of apt's configuration, in apt's order, told apart by their Release files."""
    return Mirrors(lambda: _read_apt(config or apt_config()))


def explicit(uri: str, origin: str, config: AptConfig | None = None) -> Mirrors:
    """A mirror named by the user: taken as it is (apt's proxy still applies)."""
    if not uri.startswith(SCHEMES):
        raise UsageError(f"{origin}={uri!r} is not an http:// or https:// URL of a Debian mirror")
    return Mirrors(lambda: ([Mirror(uri.rstrip("/"), origin)], [], config or apt_config(), []))


def choose(uri: str | None = None, origin: str = "--saveexport-debian-mirror") -> Mirrors:
    """The option's mirror when given, else apt's."""
    return explicit(uri, origin) if uri else from_apt()


def proxy_environment(mirrors: Mirrors, uri: str) -> dict[str, str]:
    """apt's proxy as the environment variables apt (inside mmdebstrap or a build) honours."""
    proxy = mirrors.proxy_for(uri)
    if not proxy:
        return {}
    scheme = urllib.parse.urlsplit(uri).scheme
    return {f"{scheme}_proxy": proxy}
