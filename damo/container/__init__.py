"""The pipeline image as configuration: build it with the local Docker engine, push it, pin it.

:mod:`damo.container.reference` resolves the image a compile or a containerised run uses
(``pipeline.image``, else the one ``damo image build`` recorded) and refuses one not pinned by digest;
:mod:`damo.container.build` assembles the build context, builds, pushes and records.
"""
