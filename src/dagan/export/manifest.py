"""``manifest.json`` of an exported model folder: what the graphs are, how they were made, and checksums.

The manifest names the architecture, resolution and keypoint count, the full model config (so the
inference pipeline can be rebuilt without the checkpoint), each graph's file, inputs, outputs and SHA-256,
and the SHA-256 of the weights the graphs came from. :func:`read_manifest` refuses anything that is not
such a manifest with one line; :func:`check_graph_file` refuses a graph file that is missing or differs
from the one exported (corrupt, truncated, or copied from another export).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dagan.errors import CheckpointError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "check_graph_file",
    "find_manifest",
    "is_export",
    "read_manifest",
    "sha256_file",
    "weights_checksum",
]

FORMAT = "dagan-onnx-export"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
_REQUIRED = ("arch", "resolution", "config", "graphs", "precision", "dynamic_batch", "weights_sha256")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_checksum(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a checkpoint file, or of a folder's files (name and content, sorted by name) for the
    official per-module folders."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def find_manifest(path: str | os.PathLike[str]) -> Path | None:
    """The manifest of an export folder given as the folder or as its ``manifest.json``; None otherwise."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return path / MANIFEST_NAME
    if path.name == MANIFEST_NAME and path.is_file():
        return path
    return None


def is_export(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an exported model folder (or its manifest)."""
    return find_manifest(path) is not None


def read_manifest(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """(folder, manifest) of an export folder (or its manifest file); CheckpointError for anything else."""
    manifest_path = find_manifest(path)
    if manifest_path is None:
        raise CheckpointError(f"'{path}' is not an exported model folder (no {MANIFEST_NAME}; see 'dagan export')")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable manifest ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{manifest_path} is not a dagan export manifest")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{manifest_path} has export format {data['format_version']}, newer than this dagan supports "
            f"({FORMAT_VERSION})"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"{manifest_path} lacks {', '.join(missing)}")
    return manifest_path.parent, data


def check_graph_file(folder: Path, manifest: dict[str, Any], name: str) -> Path:
    """The path of graph ``name``, after checking it exists and matches the checksum in the manifest."""
    entry = manifest["graphs"].get(name)
    if entry is None:
        raise CheckpointError(f"{folder / MANIFEST_NAME} lists no '{name}' graph")
    path = folder / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"{path} is missing (re-run 'dagan export')")
    if sha256_file(path) != entry.get("sha256"):
        raise CheckpointError(
            f"{path} does not match its manifest (corrupt, or from another export); re-run 'dagan export'"
        )
    return path
