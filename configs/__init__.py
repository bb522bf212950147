"""YAML presets for damo (``damo <verb> --config tiny``); defaults live in damo/config.py."""
