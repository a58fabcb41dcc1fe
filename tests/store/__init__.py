# Every test that opens a mongomock store imports this package (tests.store.conftest).
from tests.store import mongomock_compat as mongomock_compat
