"""CLIP hardness (DAMA.md §1): split responses into sub-sentences, score them against the image.

- ``splitter``: sub-sentence splitters by name (a table; rule-based default, within the CLIP context);
- ``clip``: loading an open_clip model (name + tag, checkpoint file, hf-hub-layout folder; local/s3://);
- ``inputs``: the DataLoader side (workers decode images, split and tokenize texts);
- ``text_encoder``: length-sorted, padding-cut text encoding;
- ``scoring``: the per-pair math (one softmax over chosen ∪ rejected, or raw cosine);
- ``scorer``: the per-batch callable the step maps over the dataset;
- ``report``: δ summary statistics and histogram.
"""
