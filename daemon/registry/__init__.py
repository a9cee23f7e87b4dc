"""The screening registry: participant and outcome files in, the LCSR / CSV / FHIR export and the practice audit out.

Pure parts (no files, no database): :mod:`.csvfiles` (participant and outcome CSV validation),
:mod:`.pseudonym` (the keyed participant key), :mod:`.measures` (every audit figure), :mod:`.lcsr`
(the LCSR exam record layout), :mod:`.fhir` (the FHIR R4 Bundle).  :mod:`.audit_html` renders the audit
(matplotlib figures embedded).  Records are read and written by :mod:`daemon.storage.registry`.
"""
