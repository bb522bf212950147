"""One module per pipeline step, each with ``run(config, paths) -> result``: THE code path.

The CLI (``damo.cli``) and every KFP component (``components/``) are thin adapters over these.
"""
