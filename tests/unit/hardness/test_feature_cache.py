"""The scorer's feature cache: cached rows are looked up, the rest encoded in one call, LRU bound."""

from __future__ import annotations

import torch

from damo.hardness.cache import FeatureCache


class Encoder:
    """Feature of input ``k`` = [k, k]; records which positions each call was asked to encode."""

    def __init__(self, keys: list[bytes]):
        self.keys, self.calls = keys, []

    def __call__(self, index: list[int]) -> torch.Tensor:
        self.calls.append(index)
        return torch.tensor([[float(self.keys[i][0])] * 2 for i in index])


def test_only_unseen_inputs_are_encoded_and_rows_come_back_in_order():
    cache = FeatureCache(capacity=10)
    first = [b"\x01", b"\x02"]
    torch.testing.assert_close(cache.features(first, Encoder(first)), torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    second = [b"\x03", b"\x02", b"\x01", b"\x04"]
    encoder = Encoder(second)
    out = cache.features(second, encoder)
    assert encoder.calls == [[0, 3]]  # 3 and 4 only, in one call
    torch.testing.assert_close(out[:, 0], torch.tensor([3.0, 2.0, 1.0, 4.0]))
    assert (cache.hits, cache.misses) == (2, 4)


def test_least_recently_used_rows_are_dropped_past_capacity():
    cache = FeatureCache(capacity=2)
    keys = [b"\x01", b"\x02"]
    cache.features(keys, Encoder(keys))
    cache.features([b"\x01"], Encoder([b"\x01"]))  # 1 is now more recent than 2
    cache.features([b"\x03"], Encoder([b"\x03"]))  # evicts 2
    assert list(cache.rows) == [b"\x01", b"\x03"]
    encoder = Encoder([b"\x02", b"\x01"])
    cache.features([b"\x02", b"\x01"], encoder)
    assert encoder.calls == [[0]]


def test_capacity_zero_keeps_nothing():
    cache = FeatureCache(capacity=0)
    keys = [b"\x05"]
    cache.features(keys, Encoder(keys))
    encoder = Encoder(keys)
    cache.features(keys, encoder)
    assert encoder.calls == [[0]] and not cache.rows and cache.misses == 2
