"""Resumable units of work: a unit is done once, recorded durably, and skipped when a rerun finds its record.

A :class:`ResumableUnits` store is a folder with one JSON record per finished unit, ``FOLDER/<key>.json``
(an unusual key gets a sanitised name plus a hash, :func:`unit_file_stem`)::

    {"format": <the store's record format>, "format_version": <int>, "key": <the unit's key>,
     "signature": <everything that determined the unit's result>, <the unit's payload fields>...}

A record is written atomically once the unit's outputs are complete, so a unit interrupted before that has
no record and the next run does it again; a record with another signature (other settings, another version
of an input) is stale, and that unit is done again too. What a payload holds, and what becomes of a stale
unit's outputs, is the caller's business (``dagan evaluate`` stores per-frame metric values,
``dagan prepare-data`` the clips written from one video).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagan.atomic_files import write_json_atomic

__all__ = ["FinishedUnit", "ResumableUnits", "unit_file_stem"]

_HEADER = ("format", "format_version", "key", "signature")
_UNSAFE = re.compile(r"[^A-Za-z0-9._#@+=-]")


def unit_file_stem(key: str) -> str:
    """A file name (without extension) for a unit key: the key itself when it is made of letters, digits
    and ``._#@+=-``, does not start with a dot and is at most 150 characters; otherwise the key with other
    characters replaced by ``_``, cut to 120 characters, plus ``-`` and the first 10 hex digits of its SHA-1."""
    safe = _UNSAFE.sub("_", key)
    if safe != key or safe.startswith(".") or len(safe) > 150:
        safe = f"{safe[:120].lstrip('.')}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    return safe


@dataclass(frozen=True)
class FinishedUnit:
    """An intact record of a finished unit, as read back from its store."""

    key: str
    signature: Any
    payload: dict[str, Any]


class ResumableUnits:
    """The records of finished units in ``folder``, of one ``record_format`` (and ``version``); files of
    other formats or versions, unreadable files and records of other keys count as absent."""

    def __init__(self, folder: str | os.PathLike[str], record_format: str, version: int = 1) -> None:
        self.folder = Path(folder)
        self.record_format = record_format
        self.version = version

    def path(self, key: str) -> Path:
        """The record file of ``key``."""
        return self.folder / f"{unit_file_stem(key)}.json"

    def recorded(self, key: str) -> FinishedUnit | None:
        """The record of ``key`` whatever its signature, or None when there is no intact one."""
        try:
            doc = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(doc, dict)
            or doc.get("format") != self.record_format
            or doc.get("format_version") != self.version
            or doc.get("key") != key
            or "signature" not in doc
        ):
            return None
        payload = {k: v for k, v in doc.items() if k not in _HEADER}
        return FinishedUnit(key, doc["signature"], payload)

    def finished(self, key: str, signature: Any) -> dict[str, Any] | None:
        """The payload of ``key`` when it was recorded with this ``signature`` (the unit can be skipped),
        else None (the unit is to be done)."""
        unit = self.recorded(key)
        return unit.payload if unit is not None and unit.signature == signature else None

    def record(self, key: str, signature: Any, payload: dict[str, Any]) -> Path:
        """Record ``key`` as finished (atomically). ``signature`` and ``payload`` must be JSON data without
        NaN or infinities; payload fields may not be named like the header fields."""
        clash = sorted(set(payload) & set(_HEADER))
        if clash:
            raise ValueError(f"payload fields {clash} would overwrite the record header")
        doc = {"format": self.record_format, "format_version": self.version, "key": key,
               "signature": signature, **payload}
        return write_json_atomic(self.path(key), doc)

    def forget(self, key: str) -> None:
        """Remove the record of ``key`` (the unit will be done again)."""
        self.path(key).unlink(missing_ok=True)

    def forget_all(self) -> None:
        """Remove every record file (``*.json``) in the folder; other files there are left alone."""
        if self.folder.is_dir():
            for path in self.folder.glob("*.json"):
                path.unlink()
