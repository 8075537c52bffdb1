"""The move matrix: archives of a small image, each made by one writer (an engine that built the image
itself, or skopeo from the machine's engine's save), loaded into every engine of the run.

Two passes share a move directory: `--saveexport-move-pass=make` (each engine writes its archives, in
its own group), then `--saveexport-move-pass=load` (each engine loads them all), so no worker waits for
another. In one run (`both`, the default) each engine makes its archives and loads what is there: alone,
an engine moves to itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from saveexport import moves
from saveexport.expectations import UnexpectedBehaviour, expect, move_outcome, podman_load_agrees

pytestmark = pytest.mark.usefixtures("run_scope")


@pytest.fixture(scope="session")
def move_dir(saveexport_settings, tmp_path_factory) -> Path:
    if saveexport_settings.move_dir:
        return Path(saveexport_settings.move_dir)
    return tmp_path_factory.mktemp("moves")


def _make(engine, ops, scope, move_dir: Path) -> tuple[list[moves.MoveArchive], str, list[str]]:
    """This engine's archives (or the engine that already wrote for its writer), and what failed."""
    facts = engine.facts
    writer = moves.writer_of(facts)
    owner = moves.claim_writer(move_dir, writer, facts.label)
    if owner is not None:
        return [], f"{writer} was written by {owner} (the same build and store)", []
    made, problems = [], []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ref = moves.build_image(engine, ops, scope, Path(tmp))
        except moves.MoveError as exc:
            return [], "", [str(exc)]
        attrs = ops.inspect(ref)
        diff_ids = list((attrs.get("RootFS") or {}).get("Layers") or [])

        def new(kind: str, name: str, writer_name: str = writer) -> moves.MoveArchive:
            (move_dir / writer_name).mkdir(exist_ok=True)
            return moves.MoveArchive(writer=writer_name, kind=kind, file=f"{writer_name}/{name}",
                                     source_engine=facts.label, ref=ref, image_id=attrs["Id"], diff_ids=diff_ids)

        save = new("docker-save", "docker-save.tar")
        saved = ops.save(ref, move_dir / save.file)
        if saved.failed:
            return [], "", [f"docker save failed: {saved.error_type}: {saved.message}"]
        save.made_s = saved.duration_s
        made.append(moves.record(move_dir, moves.describe(move_dir / save.file, save)))
        steps = []
        if facts.kind == "podman" and engine.cli is not None:
            steps.append(("podman-oci-archive", "oci-archive.tar", writer,
                          lambda path: moves.podman_save(engine.cli, ref, path)))
        if engine.spec is not None and engine.spec.id == "default":  # skopeo converts the machine's engine's save
            for kind in moves.SKOPEO_KINDS:
                steps.append((kind, f"{kind}.tar", "skopeo",
                              lambda path, kind=kind: moves.skopeo_copy(move_dir / save.file, path, kind, ref)))
        for kind, name, writer_name, make in steps:
            archive = new(kind, name, writer_name)
            try:
                make(move_dir / archive.file)
            except moves.MoveError as exc:
                problems.append(str(exc))
                continue
            made.append(moves.record(move_dir, moves.describe(move_dir / archive.file, archive)))
    return made, "", problems


@pytest.mark.move_pass("make")
def test_make_move_archives(container_engine, engine_ops, run_scope, move_dir, claim_evidence):
    made, same_as, problems = _make(container_engine, engine_ops, run_scope, move_dir)
    claim_evidence.observe("move-archives", archives=made, same_writer=same_as, problems=problems)
    assert not problems, problems
    assert made or same_as, "no archive was made"


@pytest.mark.move_pass("load")
def test_load_moved_archives(container_engine, engine_ops, run_scope, move_dir, claim_evidence,
                             saveexport_settings):
    if saveexport_settings.move_pass == "both":  # one run: this engine's own archives first (the diagonal)
        made, same_as, problems = _make(container_engine, engine_ops, run_scope, move_dir)
        claim_evidence.observe("move-archives", archives=made, same_writer=same_as, problems=problems)
    archives = moves.made(move_dir)
    assert archives, (f"no archives in {move_dir}: run the make pass first (--saveexport-move-pass=make with the "
                      f"same --saveexport-move-dir)")
    facts = container_engine.facts
    cli = container_engine.cli if facts.kind == "podman" else None
    unexpected = []

    def check(expected, seen, what: str) -> None:
        try:
            expected.check(seen, what)
        except UnexpectedBehaviour as exc:
            unexpected.append(exc)

    for archive in archives:
        what = f"{archive.kind} written by {archive.writer} ({archive.source_engine}), loaded on {facts.label}"
        expected = expect(move_outcome(archive.kind, archive.writer), facts)
        cell = moves.load_into(engine_ops, run_scope, archive, move_dir / archive.file)
        claim_evidence.observe("move", archive=archive, target=facts.label, expected=expected, **cell)
        check(expected, cell["outcome"], what)
        if cli is None:
            continue
        # Podman's other way in: the CLI on the service's own store, beside its compat API
        by_cli = moves.load_into(engine_ops, run_scope, archive, move_dir / archive.file,
                                 load=lambda path: moves.podman_load(cli, path))
        claim_evidence.observe("move", archive=archive, target=f"{facts.label} (podman load)",
                               target_engine=facts.label, route="podman load", expected=expected, **by_cli)
        check(expected, by_cli["outcome"], what + " by `podman load`")
        differs = [f"{key}: compat API {cell.get(key)!r}, podman load {by_cli.get(key)!r}"
                   for key in ("outcome", "names", "image_id") if cell.get(key) != by_cli.get(key)]
        check(expect(podman_load_agrees(archive.kind, archive.writer), facts), not differs,
              what + (": `podman load` and the compat API differ (" + "; ".join(differs) + ")" if differs else ""))
    if unexpected:
        raise unexpected[0] if len(unexpected) == 1 else UnexpectedBehaviour.several(unexpected)
