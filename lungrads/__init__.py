"""ACR Lung-RADS v2022 as pure functions (standard library, and the parts of :mod:`nlcsp` both protocols share).

* :mod:`lungrads.growth` -- growth (> 1.5 mm mean diameter within 12 months) and slow growth;
* :mod:`lungrads.categorize` -- the category table (0, 1, 2, 3, 4A, 4B), 4X, S, the exam: :func:`assess`;
* :mod:`lungrads.management` -- management text, interval and due date;
* :mod:`lungrads.cases` -- the assessment JSON; the case JSON is ``noduled.case/2`` (:mod:`nlcsp.cases`).

Shared with nlcsp, once: :mod:`nlcsp.common` (percent change, VDT, mean diameter, boundaries),
:mod:`nlcsp.dates` (calendar months), :mod:`nlcsp.cases` / :mod:`nlcsp.types` (the case schema).
Where the reference summary leaves a choice, the decision is in ``lungrads/INTERPRETATION.md``.
"""

PROTOCOL = "lung-rads-2022"
PROTOCOL_NAME = "ACR Lung-RADS"
PROTOCOL_VERSION = "v2022"
