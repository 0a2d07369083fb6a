"""The one ledger: what a run has finished, written as it finishes, so a re-run resumes.

A ledger is a jsonl file. Its first line is a header naming the kind of run and the
*fingerprint* of everything its results depend on (model, sampling, program digest, data
digest, split fractions, preset settings, ...); every further line is the row of one
finished item, with the item's ``key``. Rows are appended as items finish and flushed to
disk, so a killed run loses at most the items in flight, and a torn last line (a kill in the
middle of a write) is dropped on the next read.

Opening a ledger whose fingerprint differs from this run's stops the run with a
:class:`~personae.errors.ConfigError` naming each difference ("key X there, Y now"), unless
``fresh`` starts it over, or the differing keys are ``dependent`` ones: those invalidate only
the rows they name (for example the fitted judges feed only the ``synthesizeme`` method's
judgments), which are dropped and done again while the rest are reused. A fingerprint key
that an older ledger does not record is reported and not compared.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from personae.data import append_jsonl, read_jsonl_rows, write_text_atomic
from personae.errors import ConfigError, DataError

__all__ = ["JUDGMENTS_FILE", "LEDGER_VERSION", "SAMPLING_KEYS", "Ledger", "ManifestLedger", "content_digest",
           "describe_changes", "lm_fingerprint", "record_key"]

logger = logging.getLogger(__name__)

LEDGER_VERSION = 3
"""The ledger format written today (3: rows of the A/B vocabulary); earlier ledgers are read."""
JUDGMENTS_FILE = "judgments.jsonl"
"""The ledger's name in the output folder of a judging command (evaluate, eval-personas, eval-tailoring)."""
_HEADER = "personae_ledger"


def describe_changes(recorded: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``"key 'old' there, 'new' now; ..."`` for each of ``keys`` whose values differ: how a
    saved run's settings differ from this run's, in the words every resume check uses."""
    return "; ".join(f"{k} {recorded.get(k)!r} there, {current.get(k)!r} now" for k in keys
                     if recorded.get(k) != current.get(k))


def content_digest(*texts: str) -> str:
    """A short digest of some texts: part of a key, so an item whose texts change is done again."""
    import hashlib

    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def record_key(record: Any) -> str:
    """``record_id@digest``: a preference record's key in a ledger (a record whose texts change
    gets a new one, and is done again)."""
    return f"{record.record_id}@{content_digest(record.prompt, record.chosen, record.rejected)}"


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so comparisons are fair."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


class Ledger:
    """An append-only record of finished items, keyed, behind a fingerprinted header.

    Args:
        path: The jsonl file (created with its folder when absent).
        kind: What kind of run writes it (``infer``, ``evaluate``, ...); another kind stops the run.
        fingerprint: Everything the rows depend on, as JSON values.
        fresh: Discard whatever the file holds and start over.
        dependent: Fingerprint keys whose change invalidates only some rows: each maps to a
            predicate selecting the rows it feeds.
        legacy_key: The key of a row written by an older version without one (None: skip it).

    ``rows`` holds the latest row of every key read back; :meth:`append` adds one (thread-safe).
    """

    def __init__(self, path: str | os.PathLike[str], *, kind: str, fingerprint: Mapping[str, Any],
                 fresh: bool = False, dependent: Mapping[str, Callable[[Mapping[str, Any]], bool]] | None = None,
                 legacy_key: Callable[[Mapping[str, Any]], str | None] | None = None) -> None:
        self.path = Path(path)
        self.kind = kind
        self.fingerprint: dict[str, Any] = _plain(dict(fingerprint))
        self.rows: dict[str, dict[str, Any]] = {}
        self.invalidated = 0
        self.changed: list[str] = []  # the dependent keys that changed since the ledger was written
        self._lock = threading.Lock()
        self._legacy_key = legacy_key
        self._open(fresh, dict(dependent or {}))

    # -- reading -------------------------------------------------------------------------------

    def _open(self, fresh: bool, dependent: dict[str, Callable[[Mapping[str, Any]], bool]]) -> None:
        lines = [] if fresh else read_jsonl_rows(self.path)
        if not lines:
            self._start()
            return
        header, body = lines[0], lines[1:]
        if _HEADER not in header:
            raise DataError("not a personae ledger (no header line); use another output, or --fresh to start over",
                            source=str(self.path), record=1)
        if header.get("kind", self.kind) != self.kind:
            raise ConfigError(f"{self.path} is the ledger of a {header.get('kind')!r} run, not of {self.kind!r}; "
                              "use another output")
        recorded = header.get("fingerprint")
        if not isinstance(recorded, dict):  # version 1 kept the fingerprint beside the marker
            recorded = {k: v for k, v in header.items() if k not in (_HEADER, "kind")}
        unrecorded = sorted(k for k in self.fingerprint if k not in recorded)
        if unrecorded:
            logger.warning("%s does not record the %s of its results; reusing them as they are", self.path,
                           " and ".join(unrecorded))
        changed = sorted(k for k in set(self.fingerprint) | set(recorded)
                         if k not in unrecorded and recorded.get(k) != self.fingerprint.get(k))
        fatal = [k for k in changed if k not in dependent]
        if fatal:
            earlier = header.get(_HEADER) != LEDGER_VERSION
            raise ConfigError(f"{self.path} holds results made with other settings "
                              f"({describe_changes(recorded, self.fingerprint, fatal)})"
                              f"{' by an earlier version of personae, whose prompts differ' if earlier else ''}; "
                              "use another output, or --fresh to start over")
        self.changed = changed
        stale = [dependent[k] for k in changed]
        for row in body:
            key = row.get("key")
            if not isinstance(key, str):
                key = self._legacy_key(row) if self._legacy_key is not None else None
                if key is None:
                    continue
                row = {"key": key, **row}
            if any(selects(row) for selects in stale):
                self.invalidated += 1
                continue
            self.rows[key] = row
        if changed or unrecorded or header.get(_HEADER) != LEDGER_VERSION:
            self._rewrite()  # record this run's fingerprint, without the rows it invalidated
        if changed:
            logger.info("%s: %s changed; %d results made with the old value are done again", self.path,
                        ", ".join(changed), self.invalidated)

    def _header(self) -> dict[str, Any]:
        return {_HEADER: LEDGER_VERSION, "kind": self.kind, "fingerprint": self.fingerprint}

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(self._header(), ensure_ascii=False) + "\n")

    def _rewrite(self) -> None:
        lines = [self._header(), *self.rows.values()]
        write_text_atomic(self.path, "".join(json.dumps(x, ensure_ascii=False, default=str) + "\n" for x in lines))

    # -- using ---------------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The latest row of ``key``, or None."""
        return self.rows.get(key)

    def succeeded(self, key: str) -> dict[str, Any] | None:
        """The row of ``key`` when that item finished without error, else None."""
        row = self.rows.get(key)
        return row if row is not None and row.get("error") is None else None

    def attempts(self, key: str) -> int:
        """The attempts earlier runs spent on ``key`` without success (0 when none)."""
        row = self.rows.get(key)
        return int(row.get("attempts") or 0) if row is not None and row.get("error") is not None else 0

    def adopt(self, earlier: str, key: str) -> dict[str, Any] | None:
        """Give the row an earlier version kept under the key ``earlier`` the key ``key`` (appended
        under it, so later runs find it there); None when there is no such row, or ``key`` has one."""
        row = self.rows.get(earlier)
        if row is None or key in self.rows:
            return None
        return self.append(key, row)

    def append(self, key: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Record ``row`` as the result of ``key``: appended and flushed before this returns."""
        entry = {"key": key, **{k: v for k, v in row.items() if k != "key"}}
        with self._lock:
            append_jsonl(entry, self.path)
            self.rows[key] = entry
        return entry


SAMPLING_KEYS = ("temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k", "seed", "stop")


class ManifestLedger(Ledger):
    """A ledger kept as one manifest per finished item, inside the item's own output folder:
    ``ROOT/FOLDER/MANIFEST``, on any fsspec filesystem (a local folder, ``s3://bucket/out``).

    For outputs that may live in an object store, where no file can be appended to: each
    successful row names its ``folder`` and is written there, with the fingerprint, after the
    folder is whole. A row that failed is kept for this run only (the item is tried again next
    time). A manifest made with another fingerprint stops the run, naming each difference
    (``fresh`` ignores every manifest). ``legacy_key`` gives the key of a manifest an older
    version wrote without one.
    """

    def __init__(self, root: str, *, kind: str, fingerprint: Mapping[str, Any], fresh: bool = False,
                 manifest: str = "_personae.json",
                 legacy_key: Callable[[Mapping[str, Any]], str | None] | None = None) -> None:
        import fsspec

        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.root = str(self.root).rstrip("/")
        self.url, self.manifest = root, manifest
        super().__init__(root, kind=kind, fingerprint=fingerprint, fresh=fresh, legacy_key=legacy_key)

    def _open(self, fresh: bool, dependent: dict[str, Callable[[Mapping[str, Any]], bool]]) -> None:
        self.fs.makedirs(self.root, exist_ok=True)
        if fresh:
            return
        mismatched: list[str] = []
        for path in sorted(self.fs.glob(f"{self.root}/*/{self.manifest}")):
            row = self._read(path)
            if row is None:
                continue  # a manifest cut short: the item is done again
            folder = path.rstrip("/").split("/")[-2]
            differences = describe_changes(row.get("fingerprint", {}), self.fingerprint, sorted(self.fingerprint))
            if differences:
                mismatched.append(f"{folder}: {differences}")
                continue
            key = row.get("key")
            if not isinstance(key, str):
                key = self._legacy_key({"folder": folder, **row}) if self._legacy_key is not None else None
                if key is None:
                    continue
            self.rows[key] = {"key": key, "folder": folder, **{k: v for k, v in row.items() if k != "fingerprint"}}
        if mismatched:
            more = f" and {len(mismatched) - 2} more" if len(mismatched) > 2 else ""
            raise ConfigError(f"{self.url} holds results made with other settings ({'; '.join(mismatched[:2])}{more}); "
                              "use another output, or --fresh to start over")

    def _read(self, path: str) -> dict[str, Any] | None:
        with self.fs.open(path, "rb") as fh:
            try:
                row = json.loads(fh.read())
            except ValueError:
                return None
        return row if isinstance(row, dict) else None

    def append(self, key: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Record ``row`` (which names its ``folder``): its manifest is written when it succeeded."""
        entry = {"key": key, **{k: v for k, v in row.items() if k != "key"}}
        if entry.get("error") is None:
            manifest = {**entry, "fingerprint": self.fingerprint}
            with self.fs.open(f"{self.root}/{entry['folder']}/{self.manifest}", "wb") as fh:
                fh.write(json.dumps(manifest, indent=1, sort_keys=True, default=str).encode())
        with self._lock:
            self.rows[key] = entry
        return entry


def lm_fingerprint(lm: Any) -> dict[str, str | None]:
    """What of an LM its answers depend on, as a ledger's fingerprint records it: the model, the
    server, the sampling settings and the cap on free-text fields (never a key or a token)."""
    from personae.lm import MAX_STRING_CHARS_ATTR

    kwargs = getattr(lm, "kwargs", None) or {}
    sampling = {k: kwargs[k] for k in SAMPLING_KEYS if kwargs.get(k) is not None}
    cap = getattr(lm, MAX_STRING_CHARS_ATTR, None)
    if cap is not None:
        sampling["max_string_chars"] = cap
    api_base = kwargs.get("api_base") or getattr(getattr(lm, "engine", None), "api_base", None)
    return {"model": str(getattr(lm, "model", type(lm).__name__)),
            "api_base": None if api_base is None else str(api_base),
            "sampling": json.dumps(sampling, sort_keys=True, default=str)}
