"""DICOM objects in and out of noduled (DESIGN §2, §3, §6).

- :mod:`dicom_sr.findings` — the data contracts (Seed, ReaderAttributes,
  PriorComparison, NoduleFinding, Participant, ExamAssessment).
- :mod:`dicom_sr.seeds` — ``read_seeds(source, images=...)`` /
  ``is_seed_object(ds)`` / ``read_exam_labels(source)``: reader seed points
  from TID 1500 SRs (OHIF/dcmjs, highdicom, ...), softcopy presentation states
  and JSON.
- :mod:`dicom_sr.labels` — ``parse_labels(text)``: the reader labels of §6.
- :mod:`dicom_sr.report` — ``build_report(assessment, ct_datasets, seg=...)``:
  the Comprehensive 3D SR, TID 1500, built with highdicom.
- :mod:`dicom_sr.seg` — ``build_segmentation(findings, ct_datasets)``: the
  BINARY Segmentation, one segment per nodule.
- :mod:`dicom_sr.read_report` — ``read_report(ds)``: our SR back into an
  ExamAssessment; any TID 1500 SR's measurement groups.
- :mod:`dicom_sr.codes` — every coded concept (standard codes, and the
  private scheme ``99NLCSP`` only where none exists).
- :mod:`dicom_sr.geometry`, :mod:`dicom_sr.tree` — image-plane geometry and
  lenient SR content-tree helpers.

Modules are imported on demand (``import dicom_sr.report``); importing the
package itself stays light.
"""
