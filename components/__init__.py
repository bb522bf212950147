"""KFP v2 lightweight components: one per pipeline step, each a thin adapter over ``damo.steps``.

A component maps its KFP artifacts to the step's ``<Step>Paths``, builds the config from the YAML
text it is given and calls ``damo.steps.<step>.run``. The container image is named in
``pipeline.image`` (the config), bound by ``components.steps.with_image``.
"""
