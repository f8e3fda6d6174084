"""engine.pacs.cache: LungLens's PACS cache keeps to its budget, least recently used first,
never removes what is in use, and cleans what a crash left; a folder the user chose is left alone."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from engine.pacs import cache
from engine.pacs.cache import MANIFEST, budget_bytes, prune, series_folders, touch


def _series(root: Path, study: str, series: str, nbytes: int, used: float) -> Path:
    d = root / study / series
    d.mkdir(parents=True)
    (d / "1.dcm").write_bytes(b"\0" * nbytes)
    (d / MANIFEST).write_text(json.dumps({"series_uid": series}))
    os.utime(d / MANIFEST, (used, used))
    return d


def test_prune_removes_least_recently_used_until_within_budget(tmp_path):
    t = 1_700_000_000.0
    a = _series(tmp_path, "1.2", "1.2.1", 4000, t)          # oldest use
    b = _series(tmp_path, "1.2", "1.2.2", 4000, t + 10)
    c = _series(tmp_path, "1.3", "1.3.1", 4000, t + 20)
    manifest_bytes = len((a / MANIFEST).read_bytes())
    assert [s.path for s in series_folders(tmp_path)] == [a, b, c]
    assert series_folders(tmp_path)[0].bytes == 4000 + manifest_bytes
    touch(a)                                                # opened again: now the newest
    removed = prune(tmp_path, budget=2 * (4000 + manifest_bytes))
    assert removed == [b]
    assert a.is_dir() and c.is_dir() and not b.exists() and (tmp_path / "1.2").is_dir()
    removed = prune(tmp_path, budget=4000 + manifest_bytes)
    assert removed == [c] and not (tmp_path / "1.3").exists()  # the emptied study folder goes too
    assert prune(tmp_path, budget=10 ** 9) == []


def test_prune_never_removes_what_is_kept_and_cleans_stale_staging(tmp_path):
    t = time.time()
    a = _series(tmp_path, "1.2", "1.2.1", 5000, t - 100)
    stale = tmp_path / "1.2" / ".1.2.9.partial-deadbeef"
    stale.mkdir()
    (stale / "x.dcm").write_bytes(b"1")
    os.utime(stale, (t - 7 * 3600, t - 7 * 3600))
    fresh = tmp_path / "1.2" / ".1.2.8.partial-cafebabe"   # a retrieval running now
    fresh.mkdir()
    removed = prune(tmp_path, budget=0, keep=[a])
    assert removed == [stale]
    assert a.is_dir() and fresh.is_dir()
    assert prune(tmp_path, budget=0) == [a]


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.delenv("LUNGLENS_PACS_CACHE_GB", raising=False)
    assert budget_bytes() == int(cache.DEFAULT_BUDGET_GB * 1024 ** 3)
    monkeypatch.setenv("LUNGLENS_PACS_CACHE_GB", "0.5")
    assert budget_bytes() == 512 * 1024 ** 2
    monkeypatch.setenv("LUNGLENS_PACS_CACHE_GB", "lots")
    assert budget_bytes() == int(cache.DEFAULT_BUDGET_GB * 1024 ** 3)
