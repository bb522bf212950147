"""The DataLoader side of scoring: DataLoader workers decode images, split and tokenize texts.

:class:`ScoreInputs` walks the dataset's shards in record batches of ``batch_size`` pairs, exactly
as :meth:`PreferenceDataset.iter_batches` does, and gives batch ``g`` to worker ``g % num_workers``;
the DataLoader returns workers' outputs round-robin, so batches arrive in dataset order (the
scorer checks the ids).
"""

from __future__ import annotations

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
    """B pairs and their T sub-sentences, flat: pair ``pair[t]``, chosen when ``is_chosen[t]``.

    pixels (B, 3, H, W) float; tokens (T, context_length) long; pair (T,) long; is_chosen (T,) bool.
    """

    ids: list[str]
    pixels: torch.Tensor
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
        return ScoreBatch(
            ids=list(rows["id"]),
            pixels=torch.stack([self._pixels(i, b) for i, b in zip(rows["id"], rows["image"])]),
            tokens=self.tokenizer(texts),
            pair=torch.tensor(pair),
            is_chosen=torch.tensor(is_chosen),
            chosen_sub=chosen_sub,
            rejected_sub=rejected_sub,
        )
