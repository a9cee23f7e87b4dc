"""The Australian NLCSP Nodule Management Protocol as pure functions (standard library only).

* :mod:`nlcsp.pancan` -- PanCan (Brock) malignancy risk, full model with spiculation (note 3);
* :mod:`nlcsp.growth` -- percent volume change, VDT and the note-6 growth status;
* :mod:`nlcsp.categorize` -- the baseline and follow-up tables, notes 1-16: :func:`nlcsp.categorize.assess`;
* :mod:`nlcsp.management` -- management text, interval and due date (note 2);
* :mod:`nlcsp.cases` -- the case / assessment JSON (``noduled.case/1``, ``noduled.assessment/1``).

Where the protocol leaves a choice, the decision is in ``nlcsp/INTERPRETATION.md``.
"""
