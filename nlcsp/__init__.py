"""The Australian NLCSP Nodule Management Protocol as pure functions (standard library only).

* :mod:`nlcsp.pancan` -- PanCan (Brock) malignancy risk, full model with spiculation (note 3);
* :mod:`nlcsp.common` -- arithmetic shared with ``lungrads`` (VDT, percent change, mean diameter, boundaries);
* :mod:`nlcsp.growth` -- the note-6 growth status;
* :mod:`nlcsp.categorize` -- the baseline and follow-up tables, notes 1-16: :func:`nlcsp.categorize.assess`;
* :mod:`nlcsp.management` -- management text, interval and due date (note 2);
* :mod:`nlcsp.cases` -- the case / assessment JSON (``noduled.case/2`` (``/1`` accepted), ``noduled.assessment/1``).

Where the protocol leaves a choice, the decision is in ``nlcsp/INTERPRETATION.md``.
"""
