"""The hub's cache of signed manifests: one per device, newest version wins, bounded."""

from hub.manifests import ManifestCache


def test_a_device_gets_back_only_the_version_it_asks_for() -> None:
    cache = ManifestCache()
    cache.put("d1", 3, b"v3")
    assert cache.get("d1", 3) == b"v3"
    assert cache.get("d1", 2) is None
    assert cache.get("d1", 4) is None
    assert cache.get("d2", 3) is None


def test_a_newer_version_replaces_and_an_older_one_never_does() -> None:
    cache = ManifestCache()
    cache.put("d1", 3, b"v3")
    cache.put("d1", 2, b"v2")  # a slow request signed before the publish: dropped
    assert cache.get("d1", 3) == b"v3" and cache.get("d1", 2) is None
    cache.put("d1", 4, b"v4")
    assert cache.get("d1", 4) == b"v4" and cache.get("d1", 3) is None
    assert len(cache) == 1


def test_it_holds_at_most_its_capacity_dropping_the_least_recently_used() -> None:
    cache = ManifestCache(capacity=3)
    for device in ("a", "b", "c"):
        cache.put(device, 1, device.encode())
    assert cache.get("a", 1) == b"a"  # a is used again: b is now the oldest
    cache.put("d", 1, b"d")
    assert len(cache) == 3
    assert cache.get("b", 1) is None
    assert [cache.get(x, 1) for x in ("a", "c", "d")] == [b"a", b"c", b"d"]
    cache.put("c", 2, b"c2")  # a new version is a use too
    cache.put("e", 1, b"e")
    assert cache.get("a", 1) is None and cache.get("c", 2) == b"c2"
