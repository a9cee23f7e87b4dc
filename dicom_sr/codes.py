"""Every coded concept that noduled writes into (or looks for in) DICOM objects.

Standard codes (SNOMED CT ``SCT``, DICOM ``DCM``, UCUM, UMLS) are used where
DICOM defines one; the context group (CID) is cited in a comment.  The
private coding scheme ``99NLCSP`` covers only what no standard code
expresses: the Australian NLCSP categories, management, growth concepts of
the protocol (volume doubling time, percent volume change), the solid
component of part-solid nodules and noduled's own bookkeeping.  It is
declared in the Coding Scheme Identification Sequence of every object we
write (:data:`CODING_SCHEME`).

Each concept exists once, here; the writer (:mod:`dicom_sr.report`) and the
readers (:mod:`dicom_sr.read_report`, :mod:`dicom_sr.seeds`) import it from
this module, and the readers compare by ``(value, scheme)`` only
(:func:`same`), never by meaning.
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import CodedConcept

__all__ = ["CODING_SCHEME", "PRIVATE_SCHEME", "same", "key"]

PRIVATE_SCHEME = "99NLCSP"

CODING_SCHEME = CodingSchemeIdentificationItem(
    designator=PRIVATE_SCHEME,
    name="noduled NLCSP lung cancer screening concepts",
    version="1",
    responsible_organization="noduled project",
)


def _sct(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, "SCT", meaning)


def _dcm(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, "DCM", meaning)


def _ucum(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, "UCUM", meaning)


def _nlcsp(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, PRIVATE_SCHEME, meaning)


def key(code: object) -> tuple[str, str]:
    """``(CodeValue, CodingSchemeDesignator)`` of a code or a code-sequence item."""
    value = getattr(code, "value", None) or getattr(code, "CodeValue", None) or ""
    scheme = getattr(code, "scheme_designator", None) or getattr(code, "CodingSchemeDesignator", None) or ""
    return str(value), str(scheme)


def same(a: object, b: object) -> bool:
    """True when two codes are the same concept (value and scheme; meaning ignored)."""
    return key(a) == key(b)


# --- document structure (TID 1500, TID 1501, TID 1410, TID 1411) -------------------------
IMAGING_MEASUREMENT_REPORT = _dcm("126000", "Imaging Measurement Report")  # CID 7021
IMAGING_MEASUREMENTS = _dcm("126010", "Imaging Measurements")
MEASUREMENT_GROUP = _dcm("125007", "Measurement Group")
QUALITATIVE_EVALUATIONS = CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")  # TID 1500 row 12
IMAGE_LIBRARY = _dcm("111028", "Image Library")
TRACKING_IDENTIFIER = _dcm("112039", "Tracking Identifier")
TRACKING_UID = _dcm("112040", "Tracking Unique Identifier")
FINDING = _dcm("121071", "Finding")
FINDING_SITE = _sct("363698007", "Finding Site")
IMAGE_REGION = _dcm("111030", "Image Region")
CENTER = _dcm("111010", "Center")  # CID 219
GEOMETRIC_PURPOSE = _dcm("130400", "Geometric purpose of region")
REFERENCED_SEGMENT = _dcm("121191", "Referenced Segment")
PERSON_OBSERVER_NAME = _dcm("121008", "Person Observer Name")
DEVICE_OBSERVER_UID = _dcm("121012", "Device Observer UID")
OBSERVER_TYPE = _dcm("121005", "Observer Type")
PERSON = _dcm("121006", "Person")  # CID 270
DEVICE = _dcm("121007", "Device")  # CID 270
STUDY_INSTANCE_UID = _dcm("110180", "Study Instance UID")
STUDY_DATE = _dcm("111060", "Study Date")
TIME_POINT = CodedConcept("C2348792", "UMLS", "Time Point")

# --- procedure (CID 100 has no screening LDCT concept) ------------------------------------
CT_OF_CHEST = _sct("169069000", "Computed tomography of chest")
LDCT_SCREENING = _nlcsp("LDCT-SCREEN", "Low-dose CT for lung cancer screening")

# --- the finding ---------------------------------------------------------------------------
NODULE = _sct("27925004", "Nodule")  # CID 6104 Abnormal Opacity Finding or Feature
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = _sct("49755003", "Morphologically Abnormal Structure")  # CID 7150
LUNG = _sct("39607008", "Lung")  # CID 6129
# lobes: SNOMED CT body structures (CID 6124 Location in Chest uses the same hierarchy)
LOBES: dict[str, CodedConcept] = {
    "RUL": _sct("42400003", "Upper lobe of right lung"),
    "RML": _sct("72481006", "Middle lobe of right lung"),
    "RLL": _sct("266005", "Lower lobe of right lung"),
    "LUL": _sct("44714003", "Upper lobe of left lung"),
    "LLL": _sct("41224006", "Lower lobe of left lung"),
}
LOBE_ALIASES = {
    "right-upper": "RUL",
    "right-middle": "RML",
    "right-lower": "RLL",
    "left-upper": "LUL",
    "left-lower": "LLL",
    "lingula": "LUL",
}

# --- measurements: names (CID 7469 / 7470 / 6141) and modifiers (CID 7464) ---------------
VOLUME = _sct("118565006", "Volume")
DIAMETER = _sct("81827009", "Diameter")
LONG_AXIS = _sct("103339001", "Long axis")  # also CID 219 geometric purpose
SHORT_AXIS = _sct("103340004", "Short axis")
MEAN = _sct("373098007", "Mean")  # CID 7464 derivation
MAXIMUM = _sct("56851009", "Maximum")  # CID 7464 derivation
MEAN_ATTENUATION = _dcm("112181", "Mean Attenuation Coefficient")  # CID 6141
DIFFERENCE_IN_SIZE = _sct("442714003", "Difference in size")  # CID 6133: diameter change (mm)
# no standard concept: the protocol's own quantities
SOLID_COMPONENT_VOLUME = _nlcsp("SOLID-VOL", "Solid component volume")
SOLID_COMPONENT_DIAMETER = _nlcsp("SOLID-DIAM", "Solid component mean diameter")
MAX_AXIAL_DIAMETER = _nlcsp("MAX-AXIAL-DIAM", "Maximum axial diameter")
PERCENT_VOLUME_CHANGE = _nlcsp("VOL-CHANGE-PCT", "Percent volume change")
VOLUME_DOUBLING_TIME = _nlcsp("VDT", "Volume doubling time")
PANCAN_RISK = _nlcsp("PANCAN", "PanCan malignancy risk")
PLEURAL_DISTANCE = _nlcsp("PLEURA-DIST", "Distance to pleura")
DAYS_BETWEEN = _nlcsp("DAYS-BETWEEN", "Days between studies")
CONFIDENCE = _nlcsp("CONFIDENCE", "Algorithm confidence")

# --- units (UCUM, CID 7181 / 82) -----------------------------------------------------------
MM = _ucum("mm", "millimeter")
MM3 = _ucum("mm3", "cubic millimeter")
HU = _ucum("[hnsf'U]", "Hounsfield unit")
PERCENT = _ucum("%", "Percent")
DAYS = _ucum("d", "day")
MONTHS = _ucum("mo", "month")
NO_UNITS = _ucum("1", "no units")

# --- qualitative evaluations ---------------------------------------------------------------
YES = _sct("373066001", "Yes")  # CID 230
NO = _sct("373067005", "No")  # CID 230

COMPOSITION = _nlcsp("COMPOSITION", "Nodule composition")
COMPOSITIONS: dict[str, CodedConcept] = {
    "solid": _nlcsp("SOLID", "Solid"),
    "part-solid": _nlcsp("PART-SOLID", "Part-solid"),
    "non-solid": _nlcsp("NON-SOLID", "Non-solid (ground-glass)"),
}
# boolean characteristics: name -> concept (value YES / NO)
CHARACTERISTIC_FLAGS: dict[str, CodedConcept] = {
    "benign_calcification": _nlcsp("BENIGN-CALC", "Benign pattern of calcification"),
    "fat": _nlcsp("FAT", "Macroscopic fat"),
    "juxtapleural": _nlcsp("JUXTAPLEURAL", "Juxtapleural"),
    "perifissural": _nlcsp("PERIFISSURAL", "Perifissural"),
    "upper_lobe": _nlcsp("UPPER-LOBE", "Upper lobe location"),
    "spiculated": _nlcsp("SPICULATED", "Spiculation"),
}
AIRWAY = _nlcsp("AIRWAY", "Airway nodule")
AIRWAYS: dict[str, CodedConcept] = {
    "subsegmental": _nlcsp("AIRWAY-SUBSEG", "Subsegmental airway"),
    "subsegmental-secretions": _nlcsp("AIRWAY-SECR", "Subsegmental airway, secretions"),
    "segmental-or-proximal": _nlcsp("AIRWAY-SEG", "Segmental or more proximal airway"),
    "segmental-or-proximal-secretions": _nlcsp("AIRWAY-SEG-SECR", "Segmental or more proximal airway, secretions"),
}
CYST = _nlcsp("CYST", "Pulmonary cyst")
CYSTS: dict[str, CodedConcept] = {
    "thin-walled": _nlcsp("CYST-THIN", "Thin-walled cyst"),
    "thick-walled": _nlcsp("CYST-THICK", "Thick-walled cyst"),
    "multilocular": _nlcsp("CYST-MULTI", "Multilocular cyst"),
}
LOBE = _nlcsp("LOBE", "Lobe")

GROWTH_STATUS = _nlcsp("GROWTH", "Growth status")
GROWTH_STATUSES: dict[str, CodedConcept] = {
    "baseline": CodedConcept("C1442488", "UMLS", "Baseline"),  # CID 6146
    "new": _nlcsp("NEW", "New nodule"),
    "growing": _sct("15454001", "Increase in size"),  # CID 6134
    "slowly-growing": _nlcsp("SLOW-GROWTH", "Slowly growing"),
    "stable": _sct("129723006", "No significant changes in the finding"),  # CID 6134
    "decreased": _sct("19776001", "Decrease in size"),  # CID 6134
}

NODULE_CATEGORY = _nlcsp("NODULE-CAT", "NLCSP nodule category")
EXAM_CATEGORY = _nlcsp("EXAM-CAT", "NLCSP exam category")
PRIOR_CATEGORY = _nlcsp("PRIOR-CAT", "NLCSP category at prior time point")
PRIOR_CATEGORY_DERIVED = _nlcsp("PRIOR-CAT-DERIV", "Prior category derived by noduled")
CATEGORIES: dict[str, CodedConcept] = {str(n): _nlcsp(f"CAT{n}", f"NLCSP Category {n}") for n in range(7)}
# ACR Lung-RADS v2022 (issue 15).  SNOMED CT has the observable "Lung Imaging Reporting and Data System
# category" (1362105002, as used by the HL7 Lithuanian lung-screening FHIR IG) but no codes for the category
# values, and DICOM defines no context group for them: the values are in the declared private scheme.
LUNG_RADS_EXAM_CATEGORY = _sct("1362105002", "Lung Imaging Reporting and Data System category")
LUNG_RADS_NODULE_CATEGORY = _nlcsp("LR-NODULE-CAT", "Lung-RADS nodule category")
LUNG_RADS_PRIOR_CATEGORY = _nlcsp("LR-PRIOR-CAT", "Lung-RADS category at prior time point")
LUNG_RADS_CATEGORIES: dict[str, CodedConcept] = {
    c: _nlcsp(f"LR{c}", f"Lung-RADS Category {c}") for c in ("0", "1", "2", "3", "4A", "4B", "4X")
}
LUNG_RADS_S_MODIFIER = _nlcsp("LR-S", "Lung-RADS S modifier (significant findings, non lung cancer)")
PROTOCOL = _nlcsp("PROTOCOL", "Screening protocol")
PROTOCOL_VERSION = _nlcsp("PROTOCOL-VERSION", "Screening protocol version")
PROTOCOL_NAMES: dict[str, str] = {"nlcsp": "NLCSP Nodule Management Protocol", "lung-rads-2022": "ACR Lung-RADS"}
PROTOCOL_SHORT_NAMES: dict[str, str] = {"nlcsp": "NLCSP", "lung-rads-2022": "Lung-RADS"}  # on key images and the PDF


def category_concepts(protocol: str) -> tuple[CodedConcept, CodedConcept, CodedConcept, dict[str, CodedConcept]]:
    """(exam category, nodule category, prior category, value codes) of ``protocol``."""
    if protocol == "lung-rads-2022":
        return LUNG_RADS_EXAM_CATEGORY, LUNG_RADS_NODULE_CATEGORY, LUNG_RADS_PRIOR_CATEGORY, LUNG_RADS_CATEGORIES
    if protocol == "nlcsp":
        return EXAM_CATEGORY, NODULE_CATEGORY, PRIOR_CATEGORY, CATEGORIES
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOL_NAMES)} (got {protocol!r})")


ADDITIONAL_FINDINGS = _nlcsp("A-FLAG", "Actionable additional findings (A)")
DESCRIPTOR = _nlcsp("DESCRIPTOR", "NLCSP risk descriptor")
MANAGEMENT = _dcm("111053", "Recommended Follow-up")
FOLLOW_UP_INTERVAL = _dcm("111055", "Recommended Follow-up Interval")
FOLLOW_UP_DATE = _dcm("111054", "Recommended Follow-up Date")
DECISIVE_NODULE = _nlcsp("DECISIVE", "Decisive nodule tracking UID")
SCREENING_ROUND = _nlcsp("ROUND", "Screening round")
SCREENING_ROUNDS: dict[str, CodedConcept] = {
    "baseline": CodedConcept("C1442488", "UMLS", "Baseline"),  # CID 6146
    "follow-up": _nlcsp("FOLLOW-UP-ROUND", "Follow-up screening round"),
}
RULE = _nlcsp("RULE", "Protocol rule applied")
REASON = _nlcsp("REASON", "Exam-level rule applied")
NOTE = _nlcsp("NOTE", "Processing note")
EXAM_DATE = _nlcsp("EXAM-DATE", "Exam date")
ANALYSED_SERIES = _nlcsp("SERIES", "Analysed CT series")
ANALYSIS_ERROR = _nlcsp("ERROR", "Analysis error")
NO_NODULE_AT_SEED = _nlcsp("NO-NODULE", "No nodule found at seed")
PARTICIPANT_FLAGS: dict[str, CodedConcept] = {
    "family_history_lung_cancer": _nlcsp("FAMILY-HX", "Family history of lung cancer"),
    "emphysema": _nlcsp("EMPHYSEMA", "Emphysema"),
}

# --- prior comparisons (extension container in the TID 1411 group) -----------------------
PRIOR_COMPARISON = _nlcsp("PRIOR", "Prior comparison")
COMPARISON_STUDY = _nlcsp("COMPARISON-STUDY", "Comparison study for growth")

# --- measurement quality -------------------------------------------------------------------
QUALITY_FLAG = _nlcsp("QUALITY", "Measurement quality flag")
QUALITY_FLAGS: dict[str, CodedConcept] = {
    "touches_roi_edge": _nlcsp("Q-ROI-EDGE", "Touches region-of-interest edge"),
    "cut_by_field_of_view": _nlcsp("Q-FOV", "Cut by field of view"),
    "juxtapleural_cut_applied": _nlcsp("Q-PLEURA-CUT", "Juxtapleural cut applied"),
    "vessel_detachment_applied": _nlcsp("Q-VESSEL", "Vessel detachment applied"),
    "possible_leak": _nlcsp("Q-LEAK", "Possible leak"),
    "too_small_for_volumetry": _nlcsp("Q-TOO-SMALL", "Too small for volumetry (partial volume)"),
    "seed_dependent": _nlcsp("Q-SEED-DEPENDENT", "Volume depends on the seed (re-segmentation disagrees)"),
    "volumetry_unreliable": _nlcsp("Q-UNRELIABLE", "Volumetry unreliable, use mean diameter"),
}
QUALITY_REASON = _nlcsp("Q-REASON", "Measurement quality reason")
MEASUREMENT_PLANE = _nlcsp("PLANE", "Measurement plane")
PLANES: dict[str, CodedConcept] = {
    "axial": _sct("62824007", "Transverse"),  # CID 6125-like plane qualifiers (SNOMED CT)
    "coronal": _sct("81654009", "Coronal"),
    "sagittal": _sct("30730003", "Sagittal"),
}

# --- segmentation (CID 7150 category, CID 7151 type) ---------------------------------------
SEG_CATEGORY = MORPHOLOGICALLY_ABNORMAL_STRUCTURE
SEG_TYPE = NODULE

ALGORITHM_NAME = "noduled"
# TID 4019 Algorithm Parameters (111002, DCM) of a volume NUM: "volume convention: <segmentation.types convention>"
ALGORITHM_PARAMETERS = _dcm("111002", "Algorithm Parameters")
VOLUME_CONVENTION_PARAMETER = "volume convention: "
# CID 7162 Surface Processing Algorithm Families: seeded region growing + morphology
ALGORITHM_FAMILY = _dcm("123104", "Morphological Operations")

# --- the reader's seed (extension of the TID 1411 group) -----------------------------------
SEED_POINT = _nlcsp("SEED", "Reader seed")
SEED_SOURCE = _nlcsp("SEED-SOURCE", "Seed object type")
SEED_LABEL = _nlcsp("SEED-LABEL", "Reader label")
SEED_SERIES = _nlcsp("SEED-SERIES", "Seed series")
SEED_IMAGE = _nlcsp("SEED-IMAGE", "Image the seed was drawn on")
SEED_OBJECT = _nlcsp("SEED-OBJECT", "Seed object")
SEED_TRACKING_UID = _nlcsp("SEED-TRACK-UID", "Tracking UID written by the viewer")
SEED_TRACKING_ID = _nlcsp("SEED-TRACK-ID", "Tracking identifier written by the viewer")

# --- participant (TID 1006 subject context concepts) ---------------------------------------
SUBJECT_AGE = _dcm("121033", "Subject Age")
SUBJECT_SEX = _dcm("121032", "Subject Sex")
YEARS = _ucum("a", "year")
SEXES: dict[str, CodedConcept] = {  # CID 7455
    "F": _sct("248152002", "Female"),
    "M": _sct("248153007", "Male"),
}

# --- what viewers show of a nodule (OHIF 3.13 cornerstone-dicom-sr; see dicom_sr.report) ----
# DCM 121106 "Comment": the TEXT concept cornerstone3D / OHIF write for an annotation's label and
# the one OHIF's SR viewport shows as a label line of a measurement (its COMMENT_CODE).
COMMENT = _dcm("121106", "Comment")
# noduled's container of a nodule's 3D geometry (centre, long and short axis end points in LPS,
# full precision), nested so that viewers looking for a group's top-level SCOORD/SCOORD3D do not
# mistake it for the drawable region.
GEOMETRY = _nlcsp("GEOMETRY", "Nodule geometry")
# the long axis drawn on the key axial image when it was measured in a coronal or sagittal plane:
# the measured long axis' length, along its projection onto that image, centred on the nodule
AXIAL_RULER = _nlcsp("AXIAL-RULER", "Long axis drawn on the key axial image")
