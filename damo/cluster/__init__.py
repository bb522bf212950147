"""Cluster-side helpers that run inside pipeline pods (no kfp): multi-node training via TrainJob."""
