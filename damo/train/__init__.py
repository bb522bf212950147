"""DAMA training on DeepSpeed: pair batches, log-probs, the loop, checkpoints, outputs.

``damo.steps.train.run`` is the entry point; see :mod:`damo.train.loop` for the order of a step.
"""
