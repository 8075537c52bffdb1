"""Which Debian mirror: apt's configuration read from files the tests write, Debian's entries told
apart by their Release files, suites looked for before anything is built."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from debrepo import Server, apt_conf, make_repo
from saveexport import debian_mirror as dm
from saveexport.debian_mirror import AptConfig, Mirror, Mirrors, MirrorUnavailable

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, sources_list: str | None = None, parts: dict[str, str] | None = None,
            proxies: dict[str, str] | None = None) -> AptConfig:
    (tmp_path / "parts").mkdir(parents=True, exist_ok=True)
    (tmp_path / "lists").mkdir(exist_ok=True)
    if sources_list is not None:
        (tmp_path / "sources.list").write_text(sources_list)
    for name, text in (parts or {}).items():
        (tmp_path / "parts" / name).write_text(text)
    return AptConfig(tmp_path / "sources.list", tmp_path / "parts", tmp_path / "lists", proxies or {})


def _release(config: AptConfig, uri: str, suite: str, origin: str, label: str, signed: bool = True) -> None:
    """A Release file where apt keeps it, named as apt names it."""
    name = dm.uri_to_filename(f"{uri.rstrip('/')}/dists/{suite}/") + ("InRelease" if signed else "Release")
    body = f"Origin: {origin}\nLabel: {label}\nSuite: {suite}\nCodename: {suite}\n"
    if signed:
        body = f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{body}-----BEGIN PGP SIGNATURE-----\nxx\n"
    (config.lists / name).write_text(body)


def test_one_line_sources_with_options_comments_and_deb_src():
    text = """
# a comment
deb [signed-by=/usr/share/keyrings/k.gpg arch=amd64,i386] http://mirror.example/debian bookworm main contrib # tail
deb-src http://mirror.example/debian bookworm main
deb [ trusted=yes ] http://other.example/x/ trixie main
   deb http://third.example/debian sid main
deb broken
"""
    entries = dm.parse_one_line(text, "/etc/apt/sources.list")
    assert [e.uri for e in entries] == ["http://mirror.example/debian", "http://other.example/x/",
                                        "http://third.example/debian"]
    first = entries[0]
    assert first.suites == ("bookworm",) and first.components == ("main", "contrib")
    assert first.option("signed-by") == "/usr/share/keyrings/k.gpg" and first.option("arch") == "amd64,i386"
    assert first.where == "/etc/apt/sources.list:3"
    assert entries[1].option("trusted") == "yes"


def test_deb822_stanzas_with_several_uris_disabled_ones_and_an_inline_key():
    text = """Types: deb deb-src
# a comment inside the stanza
URIs: http://a.example/debian http://b.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://inline.example/debian
Suites: trixie
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZ
 -----END PGP PUBLIC KEY BLOCK-----
"""
    entries = dm.parse_deb822(text, "/etc/apt/sources.list.d/debian.sources")
    assert [e.uri for e in entries] == ["http://a.example/debian", "http://b.example/debian",
                                        "http://inline.example/debian"]
    assert entries[0].suites == ("bookworm", "bookworm-updates")
    assert entries[0].where.endswith("debian.sources:1") and entries[2].where.endswith("debian.sources:4")
    assert entries[0].option("signed-by") == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert "BEGIN PGP PUBLIC KEY BLOCK" in entries[2].option("signed-by")


def test_several_files_are_read_in_apts_order(tmp_path):
    config = _config(tmp_path, "deb http://first.example/debian bookworm main\n", {
        "b.sources": "Types: deb\nURIs: http://third.example/debian\nSuites: bookworm\nComponents: main\n",
        "a.list": "deb http://second.example/debian bookworm main\n",
        "c.list.disabled": "deb http://never.example/debian bookworm main\n",
        "d.list.save": "deb http://never2.example/debian bookworm main\n"})
    assert [e.uri for e in dm.read_sources(config.source_list, config.source_parts)] == [
        "http://first.example/debian", "http://second.example/debian", "http://third.example/debian"]


def test_debians_archive_is_told_by_its_release_file_not_by_its_host(tmp_path):
    """A third-party entry is never taken, the security archive is kept apart, an internal mirror whose
    name says nothing is taken because its Release says it is Debian's archive."""
    config = _config(tmp_path, "deb http://debian.example.com/nodesource nodistro main\n", {
        "debian.sources": "Types: deb\nURIs: http://internal-mirror.corp:8080/pub/\nSuites: bookworm\n"
                          "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                          "Types: deb\nURIs: http://internal-mirror.corp:8080/security/\nSuites: bookworm-security\n"
                          "Components: main\n",
        "z.list": "deb http://second-mirror.corp/debian bookworm main\n"})
    _release(config, "http://debian.example.com/nodesource", "nodistro", "Node Source", "Node Source")
    _release(config, "http://internal-mirror.corp:8080/pub/", "bookworm", "Debian", "Debian")
    _release(config, "http://internal-mirror.corp:8080/security/", "bookworm-security", "Debian", "Debian-Security")
    _release(config, "http://second-mirror.corp/debian", "bookworm", "Debian", "Debian", signed=False)
    mirrors = dm.from_apt(config)
    assert [m.uri for m in mirrors.candidates] == ["http://internal-mirror.corp:8080/pub",
                                                   "http://second-mirror.corp/debian"]
    assert mirrors.candidates[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert "debian.sources:1" in mirrors.candidates[0].origin
    assert mirrors.security == ["http://internal-mirror.corp:8080/security"]
    assert any("nodesource" in line and "not Debian's archive" in line for line in mirrors.skipped)


def test_no_debian_entry_at_all_is_one_line_that_says_how_to_name_one(tmp_path):
    mirrors = dm.from_apt(_config(tmp_path))
    assert mirrors.candidates == []
    with pytest.raises(MirrorUnavailable) as caught:
        mirrors.for_suite("bullseye", "the stand-in's base root (mmdebstrap)")
    message = str(caught.value)
    assert "\n" not in message and "no Debian mirror is configured" in message
    assert "--saveexport-debian-mirror" in message and "the stand-in's base root" in message


def test_the_file_names_match_what_apt_itself_uses(tmp_path):
    """apt-get update --print-uris names the file it would write for each URI: ours must agree."""
    if shutil.which("apt-get") is None:
        pytest.fail("apt-get is needed to check the names of apt's list files")
    uris = ["http://user:secret@127.0.0.1:8080/deb~ian_x/", "http://mirror.example/debian", "https://m.example/a b/"]
    env = apt_conf(tmp_path / "apt", "".join(f"deb {u.replace(' ', '%20')} bookworm main\n" for u in uris))
    proc = subprocess.run(["apt-get", "update", "--print-uris"], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    apt_names = [re.match(r"^'(.*)' (\S+) ", line).group(2) for line in proc.stdout.splitlines()
                 if "/InRelease'" in line]
    assert len(apt_names) == len(uris), proc.stdout
    ours = [dm.uri_to_filename(f"{u.replace(' ', '%20').rstrip('/')}/dists/bookworm/") + "InRelease" for u in uris]
    assert sorted(apt_names) == sorted(ours)


def test_apt_config_dump_gives_the_files_and_the_proxy(tmp_path):
    """Read through the real apt-config, from an apt.conf the test writes (APT_CONFIG)."""
    env = apt_conf(tmp_path / "apt", "", extra='Acquire::http::Proxy "http://proxy.corp:3128";\n'
                                              'Acquire::http::Proxy::local.corp "DIRECT";\n'
                                              'Acquire::https::Proxy "http://tls-proxy.corp:3129";\n')
    dump = subprocess.run(["apt-config", "dump"], env=env, capture_output=True, text=True, check=True).stdout
    config = dm.apt_config(dm.parse_apt_config_dump(dump))
    assert config.source_list == tmp_path / "apt" / "sources.list"
    assert config.source_parts == tmp_path / "apt" / "sources.list.d"
    assert config.lists == tmp_path / "apt" / "lists"
    assert config.proxy_for("http://deb.example/debian") == "http://proxy.corp:3128"
    assert config.proxy_for("http://local.corp/debian") is None
    assert config.proxy_for("https://deb.example/debian") == "http://tls-proxy.corp:3129"


def test_without_apt_proxy_the_environments_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("http_proxy", "http://env-proxy:3128")
    assert _config(tmp_path).proxy_for("http://deb.example/debian") == "http://env-proxy:3128"
    assert _config(tmp_path, proxies={"http": "DIRECT"}).proxy_for("http://deb.example/debian") is None


def test_mirrors_are_tried_in_order_until_one_holds_the_suite(tmp_path):
    repo = make_repo(tmp_path / "repo", suites=("bookworm",))
    with Server(repo.root) as good, Server(make_repo(tmp_path / "other", suites=("bullseye",)).root) as other:
        mirrors = Mirrors.of([Mirror("http://127.0.0.1:9", "first"), Mirror(good.url, "second"),
                              Mirror(other.url, "third")])
        assert mirrors.for_suite("bookworm", "x").uri == good.url
        assert mirrors.for_suite("bullseye", "x").uri == other.url
        with pytest.raises(MirrorUnavailable) as caught:
            mirrors.for_suite("trixie", "Compose v2 (docker-compose from Debian trixie)")
    message = str(caught.value)
    assert "Debian trixie, which Compose v2 (docker-compose from Debian trixie) needs" in message
    assert f"{good.url} has no trixie" in message and "127.0.0.1:9" in message and "\n" not in message
    assert mirrors.used == {"bookworm": mirrors.candidates[1], "bullseye": mirrors.candidates[2]}


def test_an_entry_whose_release_was_never_fetched_is_asked_over_http(tmp_path):
    repo = make_repo(tmp_path / "repo", suites=("bookworm",))
    with Server(repo.root) as server:
        config = _config(tmp_path / "apt", f"deb {server.url}/ bookworm main\n")
        mirrors = dm.from_apt(config)
        assert [m.uri for m in mirrors.candidates] == [server.url]
    assert "/dists/bookworm/InRelease" in server.requests


def test_the_source_line_keeps_the_entrys_keyring():
    mirror = Mirror("http://m.example/debian", "x", "/etc/apt/keyrings/m.gpg")
    assert mirror.source_line("bullseye") == "deb [signed-by=/etc/apt/keyrings/m.gpg] http://m.example/debian bullseye main"
    assert Mirror("http://m.example/debian", "x").source_line("sid") == "deb http://m.example/debian sid main"


def test_the_code_keeps_no_mirror_url_of_its_own():
    """Only the GitHub Actions example may name one (for runners whose apt knows none)."""
    hosts = ("deb.debian.org", "ftp.debian.org", "httpredir.debian.org", "cdn-fastly.deb.debian.org",
             "mirrors.kernel.org", "ftp.us.debian.org")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name.startswith(("examples/", "reports/", "benchmarks/results/", "tests/test_debian_mirror.py")) or \
                not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {host}" for host in hosts if host in text]
    assert offenders == []


def test_the_option_and_its_twins_name_where_the_mirror_came_from(pytester, monkeypatch):
    pytester.makepyfile("""
        def test_x(saveexport_settings, debian_mirrors):
            print("MIRROR", saveexport_settings.debian_mirror, "|", saveexport_settings.debian_mirror_origin, "|",
                  debian_mirrors.candidates[0].uri, "|", debian_mirrors.candidates[0].origin)
    """)
    result = pytester.runpytest("-s", "--saveexport-debian-mirror=http://mirror.example/debian/")
    result.stdout.fnmatch_lines(["*MIRROR http://mirror.example/debian/ | --saveexport-debian-mirror | "
                                 "http://mirror.example/debian | --saveexport-debian-mirror"])
    monkeypatch.setenv("SAVEEXPORT_DEBIAN_MIRROR", "http://env.example/debian")
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(["*MIRROR http://env.example/debian | SAVEEXPORT_DEBIAN_MIRROR | *"])
    monkeypatch.delenv("SAVEEXPORT_DEBIAN_MIRROR")
    result = pytester.runpytest("--saveexport-debian-mirror=ftp.example/debian")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--saveexport-debian-mirror='ftp.example/debian' is not an http:// or https:// URL*"])


def test_a_named_engine_whose_suite_no_mirror_has_fails_its_tests_with_one_line(pytester, tmp_path, monkeypatch):
    """The mirror holds bookworm only: docker:trixie is not dropped; its tests fail naming the suite."""
    repo = make_repo(tmp_path / "repo", suites=("bookworm",))
    monkeypatch.setenv("SAVEEXPORT_ENGINE_CACHE", str(tmp_path / "engines"))  # nothing cached: it must fetch
    pytester.makepyfile("def test_x(container_engine):\n    pass\n")
    with Server(repo.root) as server:
        result = pytester.runpytest("--saveexport-engine=docker:trixie", f"--saveexport-debian-mirror={server.url}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_x[[]docker-26.1.5-overlay2[]]*",
                                 f"*Debian trixie, which docker:trixie (its docker.io) needs, is on no mirror "
                                 f"configured ({server.url} has no trixie)*"])
    assert "Traceback" not in result.stdout.str()


def test_the_report_says_which_mirror_each_process_fetched_from_and_why():
    from saveexport.evidence import merge_mirrors
    from saveexport.report import _mirror_paragraph

    choice = {"candidates": [{"uri": "http://m.corp/debian", "origin": "apt's configuration (/etc/apt/x.sources:1)",
                              "signed_by": None}], "security": ["http://m.corp/security"],
              "proxy": {"http://m.corp/debian": "http://proxy.corp:3128"}}
    merged = merge_mirrors([dict(choice, asked=True, suites={"bullseye": "http://m.corp/debian"}),
                            dict(choice, asked=True, suites={"trixie": "http://m.corp/debian"}), {"asked": False}])
    assert merged["suites"] == {"bullseye": "http://m.corp/debian", "trixie": "http://m.corp/debian"}
    text = _mirror_paragraph(merged)
    assert "`http://m.corp/debian`, from apt's configuration (/etc/apt/x.sources:1)" in text
    assert "bullseye from `http://m.corp/debian`, trixie from `http://m.corp/debian`" in text
    assert "Through apt's proxy: `http://proxy.corp:3128`" in text and "security archive" in text
    assert merge_mirrors([{"asked": False}]) is None and "not asked in this run" in _mirror_paragraph(None)


def test_an_inline_signed_by_key_becomes_a_keyring_apt_can_read(tmp_path):
    """deb822 allows the key itself in Signed-By; apt-get and mmdebstrap get it as a file (.asc)."""
    repo = make_repo(tmp_path / "repo", suites=("bookworm",))
    block = "\n".join(" " + (line or ".") for line in repo.armored_key.read_text().strip().splitlines())
    with Server(repo.root) as server:
        config = _config(tmp_path / "apt", parts={"inline.sources": f"Types: deb\nURIs: {server.url}\n"
                                                  f"Suites: bookworm\nComponents: main\nSigned-By:\n{block}\n"})
        mirror = dm.from_apt(config).candidates[0]
    keyring = Path(mirror.signed_by)
    assert keyring.suffix == ".asc" and keyring.read_text().strip() == repo.armored_key.read_text().strip()
    assert keyring.stat().st_mode & 0o004 and keyring.parent.stat().st_mode & 0o005 == 0o005
    (tmp_path / "gnupg").mkdir(mode=0o700)
    proc = subprocess.run(["gpg", "--homedir", str(tmp_path / "gnupg"), "--show-keys", str(keyring)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "saveexport test repository" in proc.stdout
