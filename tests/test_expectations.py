"""Expectations for engines the suite never measured: extrapolated, still asserted, and a mismatch is one
line naming the rule, the versions it was measured on, the engine and what was seen."""

from __future__ import annotations

import json

import pytest

from saveexport import expectations
from saveexport.engines import EngineFacts
from saveexport.expectations import (UnexpectedBehaviour, built_layer_compression, expect, import_keeps_tag,
                                     save_layout, storage_kept_after)


def facts(kind="docker", version="28.5.2", store="graphdriver", driver="overlay2", containerd="") -> EngineFacts:
    return EngineFacts(kind=kind, version=version, api_version="1.51", min_api_version="1.24", os="linux",
                       arch="amd64", kernel="6.1", storage_driver=driver, image_store=store, endpoint="unix:///x",
                       components={"containerd": containerd} if containerd else {})


def test_the_containerd_store_on_a_containerd_never_measured_is_extrapolated():
    """Docker 28.5.2 was measured, but the store lives in containerd: another containerd is another engine."""
    on = ", ".join(expectations.MEASURED_CONTAINERD)
    assert expect(save_layout, facts(store="containerd", driver="overlayfs", containerd="3.0.1+unknown")).extrapolated \
        == f"its image store is containerd 3.0.1; the store was measured on containerd {on} only"
    assert expect(save_layout, facts(store="containerd", driver="overlayfs", containerd="1.6.20~ds1")).extrapolated == ""
    assert expect(save_layout, facts(containerd="3.0.1")).extrapolated == ""  # a graphdriver only runs containers


@pytest.fixture(autouse=True)
def _no_leftover_records():
    yield
    expectations.USED.clear()


@pytest.mark.parametrize("engine, rule, extrapolated", [
    (facts(version="26.1.5"), save_layout, ""),  # measured
    (facts(version="20.10.24+dfsg1"), save_layout, ""),  # measured; the build suffix does not matter
    (facts(version="27.3.1"), save_layout, ""),  # between 26.1.5 and 28.5.2, which agree
    (facts(version="24.0.7"), save_layout, "24.0.7 lies between 20.10.24 and 26.1.5, which behave differently"),
    (facts(version="24.0.7"), import_keeps_tag, ""),  # the same neighbours agree on this rule
    (facts(version="27.2.1"), storage_kept_after("export, then remove"),
     "27.2.1 lies between 26.1.5 and 28.5.2, which behave differently"),  # upstream saw it leak on 27.2.1
    (facts(version="27.2.1"), storage_kept_after("run, then remove"), ""),
    (facts(kind="podman", version="5.0.0"), storage_kept_after("import, then remove the image"), ""),  # 4.3.1
    # and 5.4.2 agree: each keeps the archive an import was sent
    (facts(version="29.1.2"), save_layout, "29.1.2 is newer than the newest measured (28.5.2)"),
    (facts(version="19.03.15"), save_layout, "19.03.15 is older than the oldest measured (20.10.24)"),
    (facts(version="29.0.0", store="containerd", driver="overlayfs"), built_layer_compression,
     "29.0.0 is newer than the newest measured (28.5.2)"),
    (facts(kind="podman", version="6.2.0"), save_layout, "6.2.0 is newer than the newest measured (5.8.6)"),
    (facts(kind="podman", version="5.6.0"), import_keeps_tag, ""),  # between 5.4.2 and 5.8.6, which agree
    (facts(kind="podman", version="5.0.0"), import_keeps_tag,
     "5.0.0 lies between 4.3.1 and 5.4.2, which behave differently"),  # Podman began keeping the tag in between
    (facts(kind="podman", version="4.9.4"), save_layout, ""),  # 4.3.1 and 5.4.2 agree on this rule
    (facts(kind="podman", version="5.8.6", store="containerd"), save_layout,
     "no podman engine with the containerd image store was measured"),
])
def test_where_an_answer_stands(engine, rule, extrapolated):
    expected = expect(rule, engine)
    assert expected.extrapolated == extrapolated
    assert expected.value == rule(engine)  # extrapolated or not, it is still an answer to assert
    assert expectations.USED[-1] == expected.to_dict()


def test_a_mismatch_names_the_rule_the_measured_versions_the_engine_and_what_was_seen():
    expected = expect(save_layout, facts(version="29.1.2"))
    expected.check("oci-image-layout", "the layout docker save writes")  # as expected: nothing raised
    with pytest.raises(UnexpectedBehaviour) as raised:
        expected.check("docker-legacy", "the layout docker save writes")
    assert isinstance(raised.value, AssertionError)  # a failed test, not an error of the suite
    line = str(raised.value)
    assert "\n" not in line
    for part in ("save_layout", "20.10.24, 26.1.5, 28.5.2", "docker-29.1.2-overlay2", "'docker-legacy'",
                 "'oci-image-layout'", "newer than the newest measured"):
        assert part in line, (part, line)
    assert raised.value.record["seen"] == "docker-legacy" and raised.value.record["rule"] == "save_layout"


def test_a_run_lists_extrapolated_expectations_and_new_behaviours(pytester, tmp_path):
    pytester.makepyfile(test_unmeasured="""
        from saveexport.engines import EngineFacts
        from saveexport.expectations import expect, import_keeps_tag, save_layout

        NEW = EngineFacts(kind="docker", version="31.0.0", api_version="1.55", min_api_version="1.44", os="linux",
                          arch="amd64", kernel="6.1", storage_driver="overlay2", image_store="graphdriver",
                          endpoint="unix:///x")

        def test_as_expected():
            expect(import_keeps_tag, NEW).check(True, "import names its image, tag included")

        def test_behaves_anew():
            expect(save_layout, NEW).check("something-new", "the layout docker save writes")
    """)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--saveexport-report-dir={report}", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*UnexpectedBehaviour: the layout docker save writes: docker-31.0.0-overlay2 gave "
                                 "'something-new'; the rule save_layout expects 'oci-image-layout' (measured on "
                                 "20.10.24, 26.1.5, 28.5.2); extrapolated here: 31.0.0 is newer than the newest "
                                 "measured (28.5.2)*"])
    document = json.loads((report / "saveexport-evidence.json").read_text())
    assert sorted((e["rule"], bool(e["extrapolated"])) for e in document["expectations"]) == [
        ("import_keeps_tag", True), ("save_layout", True)]
    [new] = document["new_behaviours"]
    assert (new["engine"], new["rule"], new["seen"]) == ("docker-31.0.0-overlay2", "save_layout", "something-new")
    text = (report / "saveexport-report.md").read_text()
    assert "## New behaviours and extrapolated expectations" in text and "something-new" in text
