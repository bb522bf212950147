"""DAMA training on DeepSpeed: pair batches, log-probs, the loop, checkpoints, outputs.

``damo.steps.train.run`` is the entry point: :mod:`damo.train.launch` starts the ranks,
:mod:`damo.train.session` is one rank's run; see :mod:`damo.train.loop` for the order of a step.
"""
