"""The analyser's own text output (`saveexport inspect`, `saveexport diff`), apart from the evidence report."""

from __future__ import annotations

from typing import Any

from ..reporting.common import cell, table

def render_inspect(summary: dict[str, Any]) -> str:
    """`saveexport inspect` for people."""
    out = [f"{summary['path']}: {summary['kind']}, layout {summary['layout']}, {summary['bytes']:,} bytes"
           + (f", {summary['outer_compression']}-compressed" if summary["outer_compression"] != "none" else "")
           + f", {summary['entries']:,} entries"]
    if summary.get("rootfs"):
        root = summary["rootfs"]
        out.append(f"files: {root['file_bytes']:,} bytes; top level: {', '.join(root['top_level'])}")
        if root["container_files"]:
            out.append(f"files an engine adds to containers: {', '.join(root['container_files'])} "
                       f"(this looks like docker/podman export)")
    for number, image in enumerate(summary.get("images") or [], 1):
        out.append("")
        out.append(f"image {number}: {', '.join(image['tags']) or '(no tags)'}  id {image['id'][:19]}")
        for key, value in image["config"].items():
            out.append(f"  {key}: {cell(value, 200)}")
        out.append(table([[i + 1, cell(layer["member"], 60), layer["compression"], f"{layer['size']:,}",
                            layer["entries"], layer["added"], layer["changed"], layer["removed"],
                            f"{layer['shadowed_bytes']:,}"] for i, layer in enumerate(image["layers"])],
                          ["#", "layer", "compression", "bytes", "entries", "added", "changed", "removed",
                           "shadowed later"]))
        share = image["shadowed_bytes"] / image["layer_bytes"] if image["layer_bytes"] else 0
        out.append(f"  {image['files']:,} files in the flattened image; {image['shadowed_bytes']:,} bytes "
                   f"({share:.1%} of the layers' bytes) are hidden by later layers")
    if summary.get("unsafe_names"):
        out.append(f"unsafe member names (absolute or climbing): {', '.join(summary['unsafe_names'][:10])}")
    violations = summary.get("violations") or []
    if summary["layout"] != "rootfs":
        checked = "" if summary.get("digests_checked", True) else " (uncompressed layer digests not checked)"
        out.append("")
        out.append(f"verification: {'ok' if not violations else f'{len(violations)} violation(s)'}{checked}")
        for v in violations:
            out.append(f"  {v['code']}: {v['member']}: {v['detail']}")
    return "\n".join(out)


def render_diff(summary: dict[str, Any]) -> str:
    """`saveexport diff` for people."""
    out = [f"save {summary['save']} ({summary['save_bytes']:,} bytes) vs export {summary['export']} "
           f"({summary['export_bytes']:,} bytes); image {', '.join(summary['tags']) or summary['image'][:19]}",
           f"{summary['image_files']:,} paths in the flattened image, {summary['export_files']:,} in the export, "
           f"{summary['same_files']:,} identical", ""]
    out.append(table([[cause, v["paths"], f"{v['image_bytes']:,}", f"{v['export_bytes']:,}"]
                       for cause, v in summary["by_cause"].items()], ["cause", "paths", "image bytes", "export bytes"]))
    out.append("")
    out.append(table([[cell(d["path"], 70), d["where"], d["cause"],
                        cell(", ".join(f"{k}: {v[0]} → {v[1]}" for k, v in d["fields"].items()), 70)]
                       for d in summary["differences"][:100]], ["path", "where", "cause", "what differs"]))
    if len(summary["differences"]) > 100:
        out.append(f"… {len(summary['differences']) - 100} more (--json lists all)")
    out.append("")
    out.append("save − export, by cause (adds up exactly):")
    out.append(table([[k.replace("_", " "), f"{v:,}"] for k, v in summary["decomposition"].items()
                       if isinstance(v, int)], ["part", "bytes"]))
    return "\n".join(out)

