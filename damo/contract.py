"""The data contract between the steps, named once: splits, the columns later steps add or read, and
the Kubernetes Secret keys (the environment variable names the steps read).

The preference dataset's base schema (``id, split, image, question, chosen, rejected, source``) is
:data:`damo.data.dataset.BASE_SCHEMA`; these are the names other modules refer to.
"""

from __future__ import annotations

TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "validation"
SPLITS = (TRAIN_SPLIT, VALIDATION_SPLIT)

# What a pair is, for the model: the columns a batch is built from.
PAIR_COLUMNS = ("id", "image", "question", "chosen", "rejected")
# Added by the score step (CLIP hardness δ) and the reference step (the SFT model's log-probs).
DELTA_COLUMN = "delta"
REFERENCE_COLUMNS = ("reference_chosen_logps", "reference_rejected_logps")
# The reference step's manifest report names which rejected tokens those log-probs sum
# (``train.loss.rejected_tokens``); a report without it was written before the option: "all".
REJECTED_TOKENS_REPORT = "rejected_tokens"

# Kubernetes Secret keys = environment variable names (boto3 and MLflow conventions).
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
HF_SECRET_KEYS = ("HF_TOKEN",)  # hub.token_secret: gated or private Hub models
