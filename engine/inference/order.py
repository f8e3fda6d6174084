"""The order in which slices are segmented, and how they are grouped into slabs.

The app asks for the slice the user is looking at first, then its neighbours
outwards ("center_out"), so the overlay grows from where the user reads. The
headless command line processes slices in ascending order.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import numpy as np

OrderSpec = Union[None, str, Sequence[int]]


def center_out(n: int, center: int) -> list[int]:
    """Indices ``0..n-1`` starting at ``center`` and alternating outwards: c, c+1, c-1, c+2, ...

    Examples
    --------
    >>> center_out(5, 1)
    [1, 2, 0, 3, 4]
    """
    if n <= 0:
        return []
    c = min(max(int(center), 0), n - 1)
    out = [c]
    for step in range(1, n):
        for z in (c + step, c - step):
            if 0 <= z < n:
                out.append(z)
    return out


def slice_order(n: int, order: OrderSpec = None, visible_slice: Optional[int] = None) -> list[int]:
    """Resolve an ``order`` argument to a permutation of ``range(n)``.

    Parameters
    ----------
    n
        Number of slices.
    order
        ``None`` or ``"ascending"``: ``0..n-1`` (but ``visible_slice``, when given,
        first); ``"center_out"``: from ``visible_slice`` (default the middle slice)
        outwards; a sequence of slice indices: those first, in that order, then the
        remaining slices in ascending order (a priority list, so a partial list is fine).

    Raises
    ------
    ValueError
        Unknown order name or an index outside ``0..n-1``.
    """
    if isinstance(order, str):
        if order == "center_out":
            return center_out(n, n // 2 if visible_slice is None else visible_slice)
        if order != "ascending":
            raise ValueError(f"Unknown slice order '{order}': use 'ascending', 'center_out' or a list of slices.")
        order = None
    first: list[int] = []
    if order is not None:
        first = [int(z) for z in order]
    elif visible_slice is not None:
        first = [int(visible_slice)]
    bad = [z for z in first if not 0 <= z < n]
    if bad:
        raise ValueError(f"Slice index {bad[0]} is outside the scan (0..{n - 1}).")
    seen: set[int] = set()
    out = []
    for z in list(first) + list(range(n)):
        if z not in seen:
            seen.add(z)
            out.append(z)
    return out


def slabs(order: Iterable[int], batch_size: int, first_alone: bool = True) -> list[np.ndarray]:
    """Group an ordered list of slice indices into slabs of at most ``batch_size``.

    With ``first_alone`` the first slice forms a slab of its own, so the visible
    slice's result arrives after one single-slice forward pass.
    """
    items = [int(z) for z in order]
    bs = max(1, int(batch_size))
    groups: list[np.ndarray] = []
    if first_alone and items:
        groups.append(np.array(items[:1], dtype=np.int64))
        items = items[1:]
    for i in range(0, len(items), bs):
        groups.append(np.array(items[i:i + bs], dtype=np.int64))
    return groups


def fixed_slabs(segment: np.ndarray, batch_size: int, ordered: Sequence[int]) -> list[np.ndarray]:
    """Slabs of the slices to ``segment`` (bool per slice) that do not depend on the order.

    A slab's slices share one torso crop, and a crop changes pixels at its edges (and,
    through the presence threshold, whole regions): so the slabs are always the same runs
    of ``batch_size`` consecutive slices to segment, in ascending order, and only the order
    in which they are taken follows ``ordered`` (a slab comes when its first slice in
    ``ordered`` does). Any order, any visible slice, reads the scan the same.
    """
    zs = np.flatnonzero(np.asarray(segment, dtype=bool)).astype(np.int64)
    bs = max(1, int(batch_size))
    groups = [zs[i:i + bs] for i in range(0, len(zs), bs)]
    rank = np.empty(len(segment), dtype=np.int64)
    rank[np.asarray(ordered, dtype=np.int64)] = np.arange(len(ordered))
    return sorted(groups, key=lambda g: int(rank[g].min()))

