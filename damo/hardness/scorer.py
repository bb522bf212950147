"""Scoring a preference dataset: the callable :func:`damo.data.dataset.map_dataset` applies per batch.

Per batch of B pairs: each distinct image is encoded once, the T sub-sentences of the B pairs together
(:func:`damo.hardness.text_encoder.encode_texts`: length-sorted chunks, padding cut), under
``torch.inference_mode``; images and texts met in earlier batches come from a
:class:`~damo.hardness.cache.FeatureCache`. The math is :func:`damo.hardness.scoring.pair_scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from damo.config import ScoreConfig
from damo.hardness.cache import FeatureCache
from damo.hardness.clip import LoadedClip
from damo.hardness.inputs import ScoreBatch
from damo.hardness.scoring import pair_scores
from damo.hardness.text_encoder import encode_texts

FIELDS = [
    pa.field("chosen_sub", pa.list_(pa.string())),
    pa.field("chosen_sub_scores", pa.list_(pa.float64())),
    pa.field("rejected_sub", pa.list_(pa.string())),
    pa.field("rejected_sub_scores", pa.list_(pa.float64())),
    pa.field("chosen_clip", pa.float64()),
    pa.field("rejected_clip", pa.float64()),
    pa.field("delta", pa.float64()),
]


class Scorer:
    """``scorer(record_batch) -> {column: values}`` for map_dataset; inputs come from ``batches``,
    prepared in DataLoader workers, in the same order. Collects δ and splits for the statistics."""

    def __init__(
        self,
        clip: LoadedClip,
        cfg: ScoreConfig,
        batches: Iterator[ScoreBatch],
        on_batch: Callable[[int], Any] | None = None,
    ):
        self.clip = clip
        self.mode = cfg.score
        self.text_batch_size = cfg.text_batch_size
        self.batches = batches
        self.on_batch = on_batch  # e.g. a progress bar's update(pairs)
        self.deltas: list[np.ndarray] = []
        self.splits: list[str] = []
        self.sub_sentences = 0
        self.image_cache = FeatureCache(cfg.feature_cache)
        self.text_cache = FeatureCache(cfg.feature_cache)

    @torch.inference_mode()
    def encode(self, batch: ScoreBatch) -> Any:
        clip = self.clip

        def encode_images(index: list[int]) -> torch.Tensor:
            pixels = batch.pixels if len(index) == len(batch.pixels) else batch.pixels[index]
            pixels = pixels.to(clip.device, clip.dtype, non_blocking=True)
            return clip.model.encode_image(pixels, normalize=True)

        images = self.image_cache.features(batch.image_keys, encode_images)
        images = images[batch.image_index.to(clip.device)]
        tokens = batch.tokens.to(clip.device, non_blocking=True)
        texts = encode_texts(clip.model, tokens, self.text_batch_size, self.text_cache)
        pair, is_chosen = batch.pair.to(clip.device), batch.is_chosen.to(clip.device)
        return pair_scores(images, texts, pair, is_chosen, clip.model.logit_scale.exp(), self.mode)

    def __call__(self, records: pa.RecordBatch) -> dict[str, list[Any]]:
        batch = next(self.batches)
        ids = records.column("id").to_pylist()
        if batch.ids != ids:
            raise RuntimeError(
                f"scorer inputs out of step with the dataset at pair {ids[0]} (got {batch.ids[0]})"
            )
        scores = self.encode(batch)
        sub = scores.sub_scores.cpu().double().numpy()
        out: dict[str, list[Any]] = {f.name: [] for f in FIELDS}
        start = 0
        for chosen, rejected in zip(batch.chosen_sub, batch.rejected_sub):
            n_c, n_r = len(chosen), len(rejected)
            out["chosen_sub"].append(chosen)
            out["rejected_sub"].append(rejected)
            out["chosen_sub_scores"].append(sub[start : start + n_c].tolist())
            out["rejected_sub_scores"].append(sub[start + n_c : start + n_c + n_r].tolist())
            start += n_c + n_r
        out["chosen_clip"] = scores.chosen_clip.cpu().double().tolist()
        out["rejected_clip"] = scores.rejected_clip.cpu().double().tolist()
        out["delta"] = scores.delta.cpu().double().tolist()
        self.deltas.append(np.asarray(out["delta"]))
        self.splits += records.column("split").to_pylist()
        self.sub_sentences += start
        if self.on_batch is not None:
            self.on_batch(len(ids))
        return out
