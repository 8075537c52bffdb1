"""Benchmark `saveexport inspect` against the floor of listing the same archive with tar.

Not a test: it prints figures (and writes them as JSON) for a person to judge.

    python benchmarks/inspect_benchmark.py SAVE.tar [--scale 4] [--repeat 3] [--json out.json]

The floor is `tar -tvf SAVE.tar` plus `tar -xOf SAVE.tar LAYER | tar -tvf -` for every layer: what it
costs just to list everything. saveexport is timed with layer digests verified (the default) and
without (--no-digests). Peak memory is the process's VmHWM. `--scale N` also measures a synthetic
archive N times larger (N copies of every image, each under its own layer names).

`inspect --metadata` (manifests and configs only, layers seeked past, nothing verified) is timed against
`skopeo inspect docker-archive:SAVE.tar`, the two run alternately, each as a user runs it (the
`saveexport` script, the skopeo binary), the median of `--metadata-repeat` runs each.

Verifying digests has a floor of its own: sha256 is sequential within a layer, so no reader can
check the largest layer faster than this CPU hashes it (`digest_bound_s`, from hashlib's measured
speed and the layer sizes). With the usual tools, a verified listing is the floor above plus
`tar -xOf SAVE.tar LAYER | sha256sum` for every layer (`floor_with_sha256sum_s`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

PROBE = ("import re, sys; from saveexport import cli; rc = cli.main(sys.argv[1:]); "
         "sys.stderr.write('VmHWM ' + re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1) + '\\n')")


def floor_seconds(path: Path) -> float:
    started = time.monotonic()
    names = subprocess.run(["tar", "-tvf", str(path)], capture_output=True, text=True, check=True).stdout
    for line in names.splitlines():
        name = line.split()[-1]
        if name.endswith("layer.tar") or (name.startswith("blobs/") and line.startswith("-")):
            extract = subprocess.Popen(["tar", "-xOf", str(path), name], stdout=subprocess.PIPE)
            subprocess.run(["tar", "-tvf", "-"], stdin=extract.stdout, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            extract.stdout.close()
            extract.wait()
    return time.monotonic() - started


def checksum_floor_seconds(path: Path) -> float:
    """What checking layer digests costs with the usual tools: `tar -xOf SAVE.tar LAYER | sha256sum` for
    every layer (added to the listing floor, it is the floor of a verified inspect done by hand)."""
    started = time.monotonic()
    for name in _layer_sizes(path):
        extract = subprocess.Popen(["tar", "-xOf", str(path), name], stdout=subprocess.PIPE)
        subprocess.run(["sha256sum"], stdin=extract.stdout, stdout=subprocess.DEVNULL, check=True)
        extract.stdout.close()
        extract.wait()
    return time.monotonic() - started


def _layer_sizes(path: Path) -> dict[str, int]:
    with tarfile.open(path) as tar:
        return {m.name: m.size for m in tar
                if m.isreg() and (m.name.endswith("layer.tar") or m.name.startswith("blobs/"))}


def sha256_bytes_per_second() -> float:
    """hashlib's sha256 on this CPU (1 MiB blocks, one thread): what verifying a digest costs per byte."""
    import hashlib

    block, rounds = bytes(1 << 20), 256
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(rounds):
        digest.update(block)
    return rounds * len(block) / (time.perf_counter() - started)


def digest_bound_seconds(path: Path, speed: float) -> float:
    """The least time any reader needs to check every layer digest here: sha256 is sequential within one
    layer, so the largest layer takes its own time whatever else runs; all layers share os.cpu_count() cores."""
    sizes = list(_layer_sizes(path).values())
    return max(max(sizes, default=0), sum(sizes) / (os.cpu_count() or 1)) / speed


def inspect_run(path: Path, *extra: str) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PROBE, "inspect", "--json", *extra, str(path)],
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"inspect failed: {proc.stderr.strip()}")
    peak_kib = int(proc.stderr.rsplit("VmHWM ", 1)[1].split()[0])
    return seconds, peak_kib


def metadata_against_skopeo(path: Path, repeat: int) -> dict:
    """`saveexport inspect --metadata --json` and `skopeo inspect docker-archive:`, alternately (one noisy
    machine: side by side is the only fair comparison)."""
    ours_argv = [shutil.which("saveexport") or "saveexport", "inspect", "--metadata", "--json", str(path)]
    skopeo_argv = ["skopeo", "--insecure-policy", "inspect", f"docker-archive:{path}"]
    if shutil.which("skopeo") is None:
        return {"skopeo": "not installed (scripts/engine tools)"}
    ours, theirs = [], []
    for _ in range(repeat):
        for argv, times in ((ours_argv, ours), (skopeo_argv, theirs)):
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - started)
    median = statistics.median
    return {"metadata_s": round(median(ours), 4), "skopeo_inspect_s": round(median(theirs), 4),
            "ratio_metadata_to_skopeo": round(median(ours) / median(theirs), 2)}


def scaled(path: Path, factor: int) -> Path:
    """N copies of every image of a legacy save archive, each copy's layers under new names (streamed)."""
    out = path.with_name(f"{path.stem}-x{factor}.tar")
    if out.exists():
        return out
    with tarfile.open(path) as src:
        manifest = json.load(src.extractfile("manifest.json"))
        members = [m for m in src.getmembers() if m.name not in ("manifest.json", "repositories")]
        new_manifest = []
        with tarfile.open(out, "w") as dst:
            for copy in range(factor):
                prefix = f"{copy:02d}"
                for member in members:
                    data = src.extractfile(member) if member.isreg() else None
                    renamed = member.replace(name=_rename(member.name, prefix), deep=False)
                    if member.issym():
                        renamed.linkname = _rename(member.linkname, prefix)
                    dst.addfile(renamed, data)
                for image in manifest:
                    new_manifest.append(dict(image, RepoTags=[f"{t}-copy{copy}" for t in image.get("RepoTags") or []],
                                             Layers=[_rename(layer, prefix) for layer in image["Layers"]]))
            body = json.dumps(new_manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(body)
            dst.addfile(info, io.BytesIO(body))
    return out


def _rename(name: str, prefix: str) -> str:
    head, sep, rest = name.partition("/")
    if name.endswith(".json") and "/" not in name:
        return name  # configs are shared by the copies (same image config, same id)
    return f"{prefix}{head[2:]}{sep}{rest}" if len(head) == 64 else name


def measure(path: Path, repeat: int, speed: float, metadata_repeat: int = 0) -> dict:
    floor = [floor_seconds(path) for _ in range(repeat)]
    checksums = [checksum_floor_seconds(path) for _ in range(repeat)]
    bound = digest_bound_seconds(path, speed)
    verified = [inspect_run(path) for _ in range(repeat)]
    listing = [inspect_run(path, "--no-digests") for _ in range(repeat)]
    median = statistics.median
    return {
        "archive": str(path), "bytes": path.stat().st_size,
        "floor_s": round(median(floor), 3),
        "inspect_s": round(median(s for s, _ in verified), 3),
        "inspect_no_digests_s": round(median(s for s, _ in listing), 3),
        "inspect_peak_mib": round(max(k for _, k in verified) / 1024, 1),
        "inspect_no_digests_peak_mib": round(max(k for _, k in listing) / 1024, 1),
        "ratio_verified": round(median(s for s, _ in verified) / median(floor), 2),
        "ratio_no_digests": round(median(s for s, _ in listing) / median(floor), 2),
        "floor_with_sha256sum_s": round(median(floor) + median(checksums), 3),
        "ratio_verified_to_floor_with_sha256sum": round(median(s for s, _ in verified) /
                                                        (median(floor) + median(checksums)), 2),
        "digest_bound_s": round(bound, 3),
        "ratio_verified_to_digest_bound": round(median(s for s, _ in verified) / bound, 2),
        **(metadata_against_skopeo(path, metadata_repeat) if metadata_repeat else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--metadata-repeat", type=int, default=21)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    speed = sha256_bytes_per_second()
    rows = [measure(args.archive, args.repeat, speed, args.metadata_repeat)]
    if args.scale > 1:
        # (skopeo reads one image of an archive of several: --metadata is compared on the real archive only)
        rows.append(measure(scaled(args.archive, args.scale), args.repeat, speed))
    result = {"benchmark": "saveexport inspect vs tar listing", "machine": platform.platform(),
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "sha256_mb_s": round(speed / 1e6), "results": rows}
    for row in rows:
        print(f"{row['archive']}: {row['bytes'] / 1e6:,.0f} MB | floor {row['floor_s']:.2f} s | inspect "
              f"{row['inspect_s']:.2f} s ({row['ratio_verified']}x, {row['inspect_peak_mib']} MiB) | without digests "
              f"{row['inspect_no_digests_s']:.2f} s ({row['ratio_no_digests']}x, {row['inspect_no_digests_peak_mib']} MiB)"
              f" | sha256 alone needs {row['digest_bound_s']:.2f} s ({speed / 1e6:,.0f} MB/s); floor with sha256sum "
              f"{row['floor_with_sha256sum_s']:.2f} s ({row['ratio_verified_to_floor_with_sha256sum']}x)"
              + (f" | --metadata {row['metadata_s'] * 1000:.0f} ms vs skopeo inspect {row['skopeo_inspect_s'] * 1000:.0f} ms "
                 f"({row['ratio_metadata_to_skopeo']}x)" if "metadata_s" in row else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
