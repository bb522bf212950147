"""The DataLoader side of scoring: DataLoader workers decode images, split and tokenize texts.

Each distinct image of a batch (by a hash of its bytes) is decoded once; the hash also keys the
scorer's cross-batch feature cache (:mod:`damo.hardness.cache`).

:class:`ScoreInputs` walks the dataset's shards in record batches of ``batch_size`` pairs, exactly
as :meth:`PreferenceDataset.iter_batches` does, and gives batch ``g`` to worker ``g % num_workers``;
the DataLoader returns workers' outputs round-robin, so batches arrive in dataset order (the
scorer checks the ids).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from damo.hardness.splitter import Splitter

COLUMNS = ["id", "image", "chosen", "rejected"]


@dataclass
class ScoreBatch:
    """B pairs on U distinct images, and their T sub-sentences, flat: pair ``pair[t]``, chosen when
    ``is_chosen[t]``.

    pixels (U, 3, H, W) float, one per ``image_keys`` (U,) content hash; image_index (B,) long: each
    pair's row of pixels; tokens (T, context_length) long; pair (T,) long; is_chosen (T,) bool.
    """

    ids: list[str]
    pixels: torch.Tensor
    image_keys: list[bytes]
    image_index: torch.Tensor
    tokens: torch.Tensor
    pair: torch.Tensor
    is_chosen: torch.Tensor
    chosen_sub: list[list[str]]
    rejected_sub: list[list[str]]

    def pin_memory(self) -> ScoreBatch:  # called by the DataLoader when pin_memory=True
        self.pixels, self.tokens = self.pixels.pin_memory(), self.tokens.pin_memory()
        return self


class ScoreInputs(IterableDataset[ScoreBatch]):
    def __init__(
        self,
        folder: Path,
        shards: list[str],
        batch_size: int,
        preprocess: Any,
        tokenizer: Any,
        splitter: Splitter,
    ):
        self.folder = folder
        self.shards = shards
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.splitter = splitter

    def __iter__(self) -> Iterator[ScoreBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        index = 0
        for shard in self.shards:
            for batch in pq.ParquetFile(self.folder / shard).iter_batches(
                batch_size=self.batch_size, columns=COLUMNS
            ):
                if index % workers == worker:
                    yield self.prepare(batch.to_pydict())
                index += 1

    def _pixels(self, pair_id: str, data: bytes) -> torch.Tensor:
        try:
            with Image.open(io.BytesIO(data)) as image:
                return self.preprocess(image.convert("RGB"))
        except OSError as err:
            raise ValueError(
                f"pair {pair_id}: image does not decode ({err}); was the dataset ingested?"
            ) from err

    def prepare(self, rows: dict[str, list[Any]]) -> ScoreBatch:
        chosen_sub = [self.splitter(text) for text in rows["chosen"]]
        rejected_sub = [self.splitter(text) for text in rows["rejected"]]
        texts: list[str] = []
        pair: list[int] = []
        is_chosen: list[bool] = []
        for i, (chosen, rejected) in enumerate(zip(chosen_sub, rejected_sub)):
            for subs, flag in ((chosen, True), (rejected, False)):
                if not subs:
                    raise ValueError(f"pair {rows['id'][i]}: a response splits into no sub-sentence")
                texts += subs
                pair += [i] * len(subs)
                is_chosen += [flag] * len(subs)
        keys = [hashlib.blake2b(data, digest_size=16).digest() for data in rows["image"]]
        first: dict[bytes, int] = {}  # each distinct image → the first pair showing it
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        row_of = {key: u for u, key in enumerate(first)}
        return ScoreBatch(
            ids=list(rows["id"]),
            pixels=torch.stack([self._pixels(rows["id"][i], rows["image"][i]) for i in first.values()]),
            image_keys=list(first),
            image_index=torch.tensor([row_of[key] for key in keys]),
            tokens=self.tokenizer(texts),
            pair=torch.tensor(pair),
            is_chosen=torch.tensor(is_chosen),
            chosen_sub=chosen_sub,
            rejected_sub=rejected_sub,
        )
