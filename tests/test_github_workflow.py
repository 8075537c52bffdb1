"""The GitHub Actions example (examples/github-actions.yml), checked without GitHub: linted by actionlint and
zizmor, its shape read from the YAML, and its merge job's own command run on artifacts laid out as
actions/download-artifact@v4 lays them out (one directory per artifact, each holding that job's files), made from
the committed matrix evidence split one file per engine."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_report_merge import MATRIX, split  # the split the merge tests use: one evidence file per engine

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "github-actions.yml"
MATRIX_VALUE = "${{ matrix.docker }}"


def _linter(name: str) -> str:
    """The linter from the venv the tests run in (the test extra installs it), else from PATH; missing: a skip,
    and under CI=true a failure."""
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        message = f"{name} is not installed (pip install '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(job: dict, uses: str) -> dict:
    return next(s for s in job["steps"] if s.get("uses", "").startswith(uses + "@"))


def _merge_step(workflow: dict) -> dict:
    return next(s for s in workflow["jobs"]["merge"]["steps"] if "saveexport report" in s.get("run", ""))


def test_actionlint_finds_nothing():
    proc = subprocess.run([_linter("actionlint"), "-no-color", str(WORKFLOW)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_zizmor_finds_nothing_even_pedantic():
    """No ignore comments either: --no-ignores would still find nothing."""
    proc = subprocess.run([_linter("zizmor"), "--offline", "--persona", "pedantic", "--no-ignores", "--format", "json",
                           str(WORKFLOW)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


def test_every_action_is_pinned_by_a_full_commit_sha_and_the_token_reads_only(workflow):
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW.read_text())
    assert uses and all(re.fullmatch(r"actions/[a-z-]+@[0-9a-f]{40}", u) for u in uses), uses
    assert workflow["permissions"] == {"contents": "read"}


def test_one_job_per_docker_version_on_its_static_bundle_as_root(workflow):
    job = workflow["jobs"]["engines"]
    versions = job["strategy"]["matrix"]["docker"]
    assert len(versions) == len(set(versions)) >= 2 and job["strategy"]["fail-fast"] is False
    script = "\n".join(s.get("run", "") for s in job["steps"])
    assert "download.docker.com/linux/static/stable/x86_64/docker-$DOCKER_VERSION.tgz" in script
    pytest_step = next(s for s in job["steps"] if "-m pytest" in s.get("run", ""))
    run = pytest_step["run"]
    assert '--saveexport-engine "dockerd:$RUNNER_TEMP/docker-$DOCKER_VERSION"' in run
    assert any(line.startswith("sudo ") for line in run.splitlines()) and '"$PWD/.venv/bin/python" -m pytest' in run
    # the plugin gives each private dockerd a containerd of its own (tests/test_own_containerd.py): the runner's
    # system containerd needs hiding no more
    assert "/run/containerd" not in run and "unshare" not in run
    assert pytest_step["env"]["SAVEEXPORT_DEBIAN_MIRROR"] == "${{ env.DEBIAN_MIRROR }}"
    assert workflow["env"]["DEBIAN_MIRROR"].startswith(("http://", "https://"))
    assert "mmdebstrap debian-archive-keyring" in script
    upload = _step(job, "actions/upload-artifact")
    assert MATRIX_VALUE in upload["with"]["name"] and upload["with"]["overwrite"] is True


def test_the_merge_job_waits_for_every_version_and_expects_them_all(workflow):
    merge = workflow["jobs"]["merge"]
    assert merge["needs"] == "engines" and merge["if"] == "${{ !cancelled() }}"
    download = _step(merge, "actions/download-artifact")["with"]
    assert "merge-multiple" not in download  # the files share a name: one directory per artifact
    upload_name = _step(workflow["jobs"]["engines"], "actions/upload-artifact")["with"]["name"]
    versions = workflow["jobs"]["engines"]["strategy"]["matrix"]["docker"]
    assert all(fnmatch.fnmatchcase(upload_name.replace(MATRIX_VALUE, v), download["pattern"]) for v in versions)
    assert _merge_step(workflow)["env"]["EXPECT"] == len(versions)
    assert _step(merge, "actions/upload-artifact")["with"]["overwrite"] is True


STUB_PYTHON = """#!{python}
import json, os, sys
json.dump({{"argv": sys.argv[1:], "uid": os.geteuid(), "ld": os.environ.get("LD_LIBRARY_PATH"),
           "mirror": os.environ.get("SAVEEXPORT_DEBIAN_MIRROR")}}, open(os.environ["STUB_OUT"], "w"))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_the_engine_steps_script_hands_pytest_its_engine_as_root(workflow, tmp_path):
    """The engine job's pytest step run here as it runs there, with the venv's python a stub that records what
    it was given and saw: root, the engine and mirror, the library path. (sudo is a stub too where it is
    missing: root already.)"""
    job = workflow["jobs"]["engines"]
    step = next(s for s in job["steps"] if "-m pytest" in s.get("run", ""))
    version = job["strategy"]["matrix"]["docker"][0]
    root, stubs, out = tmp_path / "checkout", tmp_path / "stubs", tmp_path / "seen.json"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text(STUB_PYTHON.format(python=sys.executable))
    stubs.mkdir()
    if shutil.which("sudo") is None:
        (stubs / "sudo").write_text('#!/bin/sh\ncase "$1" in --preserve-env=*) shift;; esac\nexec "$@"\n')
    for stub in [*stubs.iterdir(), root / ".venv" / "bin" / "python"]:
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", "RUNNER_TEMP": str(tmp_path),
           "DOCKER_VERSION": version, "SAVEEXPORT_DEBIAN_MIRROR": "http://mirror.example/debian",
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "LD_LIBRARY_PATH": "/opt/python/lib", "STUB_OUT": str(out)}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(out.read_text())
    assert seen["argv"][:3] == ["-m", "pytest", "experiments"]
    engine = seen["argv"].index("--saveexport-engine")
    assert seen["argv"][engine + 1] == f"dockerd:{tmp_path}/docker-{version}"
    assert seen["argv"][seen["argv"].index("--saveexport-summary") + 1] == str(tmp_path / "summary.md")
    assert seen["uid"] == 0 and seen["ld"] == "/opt/python/lib" and seen["mirror"] == "http://mirror.example/debian"


FORWARD_PYTHON = """#!/bin/sh
# the venv's python, for one experiment: the step's own arguments, then a selection
exec {python} "$@" -k {select}
"""
ONE_EXPERIMENT = "test_save_two_images_then_load_restores_both"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_the_engine_steps_pytest_command_passes_one_experiment_on_a_debian_bundle(workflow, tmp_path):
    """The engine job's pytest step as it is written, run for real for one experiment: Debian sid's docker.io
    stands in for Docker's static bundle under $RUNNER_TEMP/docker-$DOCKER_VERSION (the plugin starts it as a
    private dockerd with a containerd of its own), the venv's python is the one running these tests."""
    from saveexport.provision import fetch_suite

    job = workflow["jobs"]["engines"]
    step = next(s for s in job["steps"] if "-m pytest" in s.get("run", ""))
    version = job["strategy"]["matrix"]["docker"][0]
    root, stubs = tmp_path / "checkout", tmp_path / "stubs"
    (root / ".venv" / "bin").mkdir(parents=True)
    for name in ("experiments", "pyproject.toml"):
        (root / name).symlink_to(ROOT / name)
    python = root / ".venv" / "bin" / "python"
    python.write_text(FORWARD_PYTHON.format(python=sys.executable, select=ONE_EXPERIMENT))
    stubs.mkdir()
    if shutil.which("sudo") is None:
        (stubs / "sudo").write_text('#!/bin/sh\ncase "$1" in --preserve-env=*) shift;; esac\nexec "$@"\n')
    for stub in [*stubs.iterdir(), python]:
        stub.chmod(0o755)
    (tmp_path / f"docker-{version}").symlink_to(Path(fetch_suite("sid").dockerd).parent)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", "RUNNER_TEMP": str(tmp_path),
           "DOCKER_VERSION": version, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    env.setdefault("SAVEEXPORT_DEBIAN_MIRROR", "")
    if not env["SAVEEXPORT_DEBIAN_MIRROR"]:
        del env["SAVEEXPORT_DEBIAN_MIRROR"]  # apt's own configuration names the mirror here
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(rf"{ONE_EXPERIMENT}\[docker-28\.5\.2-overlay2\] PASSED", proc.stdout), proc.stdout[-3000:]
    evidence = json.loads((root / "report" / "saveexport-evidence.json").read_text())
    assert [e["label"] for e in evidence["engines"]] == ["docker-28.5.2-overlay2"]
    assert "The article's claims on 28.5.2" in (tmp_path / "summary.md").read_text()  # the job summary, written


@pytest.fixture
def checkout(workflow, tmp_path) -> Path:
    """A checkout as the merge job has it when its step runs: the suite in .venv, each job's artifact in
    artifacts/<its name>/ (download-artifact without merge-multiple), and the baseline at BASELINE."""
    root = tmp_path / "checkout"
    made = split(json.loads(MATRIX.read_text()), tmp_path / "split")
    download = _step(workflow["jobs"]["merge"], "actions/download-artifact")["with"]
    upload_name = _step(workflow["jobs"]["engines"], "actions/upload-artifact")["with"]["name"]
    for part in made:
        name = upload_name.replace(MATRIX_VALUE, part.parent.name.removeprefix("evidence-"))
        assert fnmatch.fnmatchcase(name, download["pattern"])
        (root / download["path"] / name).mkdir(parents=True)
        shutil.move(part, root / download["path"] / name / part.name)
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "saveexport").symlink_to(Path(sys.executable).parent / "saveexport")
    baseline = root / workflow["env"]["BASELINE"]
    baseline.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(MATRIX, baseline)
    return root


def _run_merge(workflow: dict, root: Path, expect: int | None = None) -> subprocess.CompletedProcess:
    """The merge step's own script, as GitHub runs a `run:` (bash -e -o pipefail), with the workflow's and the
    step's env (EXPECT: the engines the committed evidence holds, unless told)."""
    step = _merge_step(workflow)
    assert "${{" not in step["run"]  # nothing for GitHub to substitute: the script runs here as it runs there
    env = {**os.environ, **{k: str(v) for k, v in {**workflow["env"], **step["env"]}.items()},
           "GITHUB_STEP_SUMMARY": str(root / "summary.md")}
    if expect is not None:
        env["EXPECT"] = str(expect)
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


ENGINES = len(json.loads(MATRIX.read_text())["engines"])  # in the committed matrix evidence


def test_the_merge_command_passes_on_every_jobs_artifact_against_the_baseline(workflow, checkout):
    proc = _run_merge(workflow, checkout, expect=ENGINES)
    assert proc.returncode == 0, proc.stderr
    assert "every engine behaved as in the baseline" in proc.stderr
    merged = json.loads((checkout / "merged" / "saveexport-evidence.json").read_text())
    assert len(merged["merged_from"]) == ENGINES and not merged["merge_warnings"]
    assert (checkout / "merged" / "saveexport-report.html").stat().st_size > 0
    markdown = (checkout / "merged" / "saveexport-report.md").read_text()
    assert "podman 4.3.1" in markdown and "28.5.2 c8d" in markdown
    summary = (checkout / "summary.md").read_text()
    assert "| C9 load of an export fails" in summary and "No baseline" not in summary


def test_the_workflows_own_expect_fails_when_fewer_jobs_uploaded(workflow, checkout):
    """The workflow expects one engine per matrix version (6); one job fewer uploaded."""
    expect = int(_merge_step(workflow)["env"]["EXPECT"])
    for extra in sorted(checkout.glob("artifacts/*"))[expect - 1:]:  # the jobs that died before uploading
        shutil.rmtree(extra)
    proc = _run_merge(workflow, checkout)
    assert proc.returncode != 0
    assert f"expected {expect} engines, {expect - 1} arrived" in proc.stderr
    assert _run_merge(workflow, checkout, expect=expect - 1).returncode == 0


def test_the_merge_command_fails_on_a_planted_regression(workflow, checkout):
    evidence = next(checkout.glob("artifacts/*podman-4.3.1*/saveexport-evidence.json"))
    document = json.loads(evidence.read_text())
    document["claims"]["C9"]["per_engine"]["podman-4.3.1"]["verdict"] = "refuted"
    evidence.write_text(json.dumps(document))
    proc = _run_merge(workflow, checkout, expect=ENGINES)
    assert proc.returncode != 0
    assert "CHANGED  podman-4.3.1: C9 verdict: was 'confirmed', now 'refuted'" in proc.stderr
    assert "podman-4.3.1: C9 verdict" in (checkout / "summary.md").read_text()
    # the merged report is written (and uploaded) all the same, for the reader to see what changed
    assert "**changed** podman-4.3.1: C9 verdict" in (checkout / "merged" / "saveexport-report.md").read_text()


def test_without_a_baseline_yet_the_first_run_only_reports_and_says_how_to_record_one(workflow, checkout):
    (checkout / workflow["env"]["BASELINE"]).unlink()
    proc = _run_merge(workflow, checkout, expect=ENGINES)
    assert proc.returncode == 0, proc.stderr
    assert f"No baseline at {workflow['env']['BASELINE']} yet" in (checkout / "summary.md").read_text()
    assert (checkout / "merged" / "saveexport-evidence.json").exists()
