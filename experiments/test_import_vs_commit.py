"""docker import against docker commit: claim C13."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("run_scope")

MESSAGE = "saveexport C13 message"
CHANGES = ["ENV SAVEEXPORT_C13=yes", 'CMD ["postgres", "-c", "max_connections=42"]']


def _shape(engine_ops, image_id: str) -> dict:
    image = engine_ops.inspect(image_id)
    history = engine_ops.history(image_id)
    config = image.get("Config") or {}
    return {"layers": len(image["RootFS"].get("Layers") or []), "history_entries": len(history),
            "top_history": {k: history[0].get(k) for k in ("CreatedBy", "Comment", "Size")} if history else None,
            "comment": image.get("Comment"), "env_has_change": "SAVEEXPORT_C13=yes" in (config.get("Env") or []),
            "cmd": config.get("Cmd")}


@pytest.mark.claim("C13")
def test_import_makes_one_layer_commit_adds_one(engine_ops, run_scope, subject_image, subject_container,
                                                export_archive, claim_evidence):
    base = engine_ops.inspect(subject_image.run_ref)
    base_layers = len(base["RootFS"]["Layers"])
    imported = engine_ops.import_(export_archive.path, run_scope.ref("c13-import", "latest"), changes=CHANGES,
                                  message=MESSAGE)
    committed = engine_ops.commit(subject_container, run_scope.ref("c13-commit", "latest"), changes=CHANGES,
                                  message=MESSAGE)
    assert imported.ok, imported.message
    assert committed.ok, committed.message
    by_import = _shape(engine_ops, imported.result["image_id"])
    by_commit = _shape(engine_ops, committed.result["image_id"])
    claim_evidence.observe("C13 import vs commit", base_layers=base_layers, import_=imported, commit=committed,
                           import_shape=by_import, commit_shape=by_commit)

    one_layer = by_import["layers"] == 1
    claim_evidence.verdict("C13", "confirmed" if one_layer else "refuted",
                           f"import made {by_import['layers']} layer(s) with {by_import['history_entries']} "
                           f"history entry")
    plus_one = by_commit["layers"] == base_layers + 1
    claim_evidence.verdict("C13", "confirmed" if plus_one else "refuted",
                           f"commit made {by_commit['layers']} layers on the image's {base_layers}")
    both_take = all(s["env_has_change"] and s["cmd"] == ["postgres", "-c", "max_connections=42"] and
                    s["comment"] == MESSAGE for s in (by_import, by_commit))
    claim_evidence.verdict("C13", "confirmed" if both_take else "refuted",
                           "both applied --change (ENV, CMD) and stored --message as the image's comment"
                           if both_take else f"--change/--message differ: import {by_import}, commit {by_commit}")
    assert one_layer and plus_one
    assert both_take
