"""Raw preference data → the preference dataset (DESIGN.md data contract), with a quarantine.

``source`` opens local paths and ``s3://`` prefixes, ``readers`` turns each supported format into
:class:`~damo.ingest.records.RawRecord` batches (a table: format name → reader), ``validate`` checks
one record, ``ingester`` streams records through validation into the dataset or the quarantine.
"""

from damo.ingest.ingester import ingest
from damo.ingest.records import IngestError

__all__ = ["IngestError", "ingest"]
