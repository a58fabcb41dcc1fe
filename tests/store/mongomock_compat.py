"""Teach mongomock 4.3 the `sort` argument PyMongo 4.9+ passes to every bulk update.

PyMongo's `UpdateOne` hands `sort=` to the bulk builder (MongoDB 8.0's sorted updateOne);
mongomock's builder predates it and fails every `bulk_write` with a TypeError. An update
without a sort (`sort=None`, all the store sends) is taken as mongomock always did; a sorted
one is refused, as mongomock refuses what it does not implement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mongomock.collection import BulkOperationBuilder

_add_update: Callable[..., Any] = BulkOperationBuilder.add_update


def _add_update_without_sort(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
    if sort is not None:
        raise NotImplementedError("mongomock does not implement sorted bulk updates")
    return _add_update(self, *args, **kwargs)


if not getattr(BulkOperationBuilder, "_takes_sort", False):
    BulkOperationBuilder.add_update = _add_update_without_sort  # type: ignore[method-assign]
    BulkOperationBuilder._takes_sort = True  # type: ignore[attr-defined]
