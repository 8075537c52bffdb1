"""docker save and docker load: claims C1, C2 and C3."""

from __future__ import annotations

import hashlib
import tarfile

import pytest

from saveexport.archives import Archive
from saveexport.isolation import short_tag
from saveexport import expectations
from saveexport.expectations import expect, repeated_saves_identical

pytestmark = pytest.mark.usefixtures("run_scope")


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _differing_members(a, b) -> list[dict]:
    """Which members of two archives differ (headers and content digests), to say why bytes differ."""
    def index(path):
        with tarfile.open(path) as tar:
            out = {}
            for info in tar:
                digest = None
                if info.isreg():
                    handle, h = tar.extractfile(info), hashlib.sha256()
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        h.update(chunk)
                    digest = h.hexdigest()[:16]
                out[info.name] = (info.size, info.mtime, info.mode, digest)
            return out
    left, right = index(a), index(b)
    return [{"member": name, "first": left.get(name), "second": right.get(name)}
            for name in sorted(set(left) | set(right)) if left.get(name) != right.get(name)]


def tags_in(path) -> list[str]:
    return sorted(tag for image in Archive(path, read_layers=False).images for tag in image.repo_tags)


@pytest.mark.claim("C1")
def test_save_two_images_then_load_restores_both(engine_ops, run_scope, subject_image, second_image, archive_dir,
                                                claim_evidence):
    """`docker save -o images.tar postgres:9.6 mongo:3.4`, remove both, `docker load -i images.tar`."""
    refs = [run_scope.ref("c1-postgres", "9.6"), run_scope.ref("c1-mongo", "3.4")]
    ids = {refs[0]: engine_ops.derive(subject_image.run_ref, refs[0]),
           refs[1]: engine_ops.derive(second_image.run_ref, refs[1])}
    saved = engine_ops.save(refs, archive_dir / "images.tar")
    assert saved.ok, saved.message
    in_archive = tags_in(saved.result["path"])
    for ref in refs:
        engine_ops.untag(ref)
    gone = {ref: engine_ops.image_id(ref) is None and engine_ops.image_id(ids[ref]) is None for ref in refs}
    loaded = engine_ops.load(archive_dir / "images.tar")
    restored = {ref: engine_ops.image_id(ref) for ref in refs}
    claim_evidence.observe("C1 save two, load both", save=saved, tags_in_archive=in_archive, removed=gone,
                           load=loaded, ids_before=ids, ids_after=restored)
    assert all(gone.values()), "the images were still there after removing them"
    both = loaded.ok and restored == ids
    claim_evidence.verdict("C1", "confirmed" if both else "refuted",
                           f"one archive of {saved.bytes:,} bytes held {', '.join(in_archive)}; after both images "
                           f"were removed, load {'restored both with their ids' if both else 'did not restore both'}"
                           + ("" if loaded.ok else f" (load: {loaded.error_type}: {loaded.message})"))
    assert sorted(short_tag(t) for t in in_archive) == sorted(refs)  # Podman stores docker.io/library/NAME
    assert loaded.ok, loaded.message
    assert restored == ids


@pytest.mark.claim("C2")
def test_save_by_name_is_an_image_repository_not_a_container(engine_ops, run_scope, subject_image, second_image,
                                                             archive_dir, claim_evidence, container_engine):
    """The article's `docker save -o b.tar postgres` (a container named like the repository) vs `... postgres:9.6`."""
    ref = run_scope.ref("c2-postgres", "9.6")  # a repository of this test's own, with one tag, as in the article
    engine_ops.derive(subject_image.run_ref, ref)
    repository = ref.rsplit(":", 1)[0]
    container = engine_ops.create(ref, "c2-postgres", environment={"POSTGRES_PASSWORD": "x"})
    assert container.ok and container.result["name"] == repository
    assert engine_ops.start(container.result["container_id"]).ok

    by_name = engine_ops.save(repository, archive_dir / "b.tar")
    by_ref = engine_ops.save(ref, archive_dir / "c.tar")
    again = engine_ops.save(ref, archive_dir / "c2.tar")
    assert by_ref.ok and again.ok
    if by_name.failed:
        engine_ops.remove(container.result["container_id"])
        claim_evidence.observe("C2 save by name", save_by_repository_name=by_name, save_by_reference=by_ref)
        claim_evidence.verdict("C2", "refuted", f"save by the bare name failed ({by_name.error_type}: "
                                                f"{by_name.message}): the engine reads NAME as NAME:latest")
    expect(expectations.save_by_repository_name_ok, container_engine.facts).check(
        by_name.ok, f"save by a bare repository name succeeds ({by_name.error_type or 'ok'}: {(by_name.message or '')[:200]})")
    if by_name.failed:
        return
    as_written = {"b.tar": {"bytes": by_name.bytes, "sha256": sha256_of(archive_dir / "b.tar"),
                            "tags": tags_in(archive_dir / "b.tar")},
                  "c.tar": {"bytes": by_ref.bytes, "sha256": sha256_of(archive_dir / "c.tar"),
                            "tags": tags_in(archive_dir / "c.tar")}}
    repeat_identical = sha256_of(archive_dir / "c2.tar") == as_written["c.tar"]["sha256"]

    # The rule behind it: give the repository a second tag, on another image.
    second_tag = f"{repository}:second"
    engine_ops.tag(second_image.run_ref, second_tag)
    try:
        by_name_two_tags = engine_ops.save(repository, archive_dir / "b2.tar")
        tags_two = tags_in(archive_dir / "b2.tar") if by_name_two_tags.ok else []
    finally:
        engine_ops.untag(second_tag)

    # A container whose name is not an image reference.
    other = engine_ops.create(ref, "only-a-container", environment={"POSTGRES_PASSWORD": "x"})
    assert other.ok, other.message
    by_container = engine_ops.save(other.result["name"], archive_dir / "container.tar")
    engine_ops.remove(other.result["container_id"])
    engine_ops.remove(container.result["container_id"])

    differing = _differing_members(archive_dir / "b.tar", archive_dir / "c.tar") if not (
        as_written["b.tar"]["sha256"] == as_written["c.tar"]["sha256"]) else []
    for name in ("b.tar", "c.tar", "c2.tar", "b2.tar", "container.tar"):
        (archive_dir / name).unlink(missing_ok=True)
    claim_evidence.observe("C2 save by name", as_written=as_written, repeat_save_identical=repeat_identical,
                           differing_members=differing[:20],
                           save_repository_with_two_tags=by_name_two_tags, tags_then=tags_two,
                           save_by_container_name=by_container)
    identical = as_written["b.tar"]["sha256"] == as_written["c.tar"]["sha256"]
    claim_evidence.verdict("C2", "confirmed" if identical else "refuted",
                           f"as written (container and repository share the name): the two archives were "
                           f"{'byte-identical' if identical else 'not byte-identical'} ({by_name.bytes:,} and "
                           f"{by_ref.bytes:,} bytes)")
    if by_container.ok:
        claim_evidence.verdict("C2", "confirmed", "save by a container's own name saved its image")
    else:
        claim_evidence.verdict("C2", "refuted",
                               f"save by a name that only a container has fails ({by_container.error_type}: "
                               f"{by_container.message}); save resolves names as images")
    claim_evidence.verdict("C2", "refuted" if len(tags_two) > 1 else "confirmed",
                           f"save by the bare repository name saved every tag of the repository ({', '.join(tags_two)})"
                           if len(tags_two) > 1 else "save by the bare name saved one tag only")
    assert by_container.failed, "save by a container-only name unexpectedly worked"
    assert by_container.error_type in ("docker.errors.ImageNotFound", "docker.errors.NotFound",
                                       "docker.errors.APIError")
    assert sorted(tags_two) == sorted([ref, second_tag])
    assert as_written["b.tar"]["tags"] == as_written["c.tar"]["tags"] == [ref]
    rule = expect(repeated_saves_identical, container_engine.facts)
    rule.check(identical, f"two saves of one image give the same bytes (members that differ: {differing[:5]})")
    rule.check(repeat_identical, "a third save of the same reference gives the same bytes again")


@pytest.mark.claim("C3")
def test_load_moves_an_existing_tag_and_keeps_the_old_image(engine_ops, run_scope, subject_image, second_image,
                                                            archive_dir, claim_evidence):
    """Load an archive whose tag already names another image: where does the tag go, what of the old image?"""
    ref = run_scope.ref("c3-postgres", "9.6")
    new_id = engine_ops.derive(subject_image.run_ref, ref)
    saved = engine_ops.save(ref, archive_dir / "c3.tar")
    assert saved.ok, saved.message
    engine_ops.untag(ref)  # the archive's image is no longer on the engine
    old_id = engine_ops.derive(second_image.run_ref, ref, **{"io.saveexport.role": "old-image"})
    assert old_id != new_id

    loaded = engine_ops.load(archive_dir / "c3.tar")
    (archive_dir / "c3.tar").unlink()
    now = engine_ops.image_id(ref)
    old_still_there = engine_ops.image_id(old_id) is not None
    old_tags = engine_ops.inspect(old_id).get("RepoTags") if old_still_there else None
    claim_evidence.observe("C3 load over an existing tag", load=loaded, tag_now=now, loaded_image=new_id,
                           old_image=old_id, old_image_still_present=old_still_there, old_image_tags=old_tags)
    assert loaded.ok, loaded.message
    claim_evidence.verdict("C3", "confirmed" if now == new_id else "refuted",
                           "the name now points to the loaded image" if now == new_id else
                           "the name still points to the old image")
    if old_still_there:
        claim_evidence.verdict("C3", "refuted",
                               f"the old image is not overwritten: it stays, untagged (tags {old_tags}), reachable "
                               f"only by id; the daemon said: {loaded.message}")
    else:
        claim_evidence.verdict("C3", "confirmed", "the old image was removed")
    assert now == new_id
    assert old_still_there and not old_tags
