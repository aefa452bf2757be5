"""Code systems and the fixed DICOM -> FHIR code tables (body part, laterality, sex)."""

from __future__ import annotations

import re
from typing import Any, Final

from dicomcast.dicom.dicomjson import CodeItem

DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
DICOM_UID: Final = "urn:dicom:uid"
RFC3986: Final = "urn:ietf:rfc:3986"
V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
PARTICIPATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENDPOINT_CONNECTION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
NAME_REPRESENTATION: Final = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"

# Coding Scheme Designators (PS3.16 Table 8-1) -> FHIR code system URIs.
_SCHEMES: Final = {
    "DCM": DCM,
    "SCT": SNOMED,
    "SRT": SNOMED,  # retired SNOMED-RT designator; DICOM now sends SNOMED CT ids under SCT
    "SNM3": SNOMED,
    "LN": LOINC,
    "UCUM": UCUM,
    "RADLEX": "http://radlex.org",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "C4": "http://www.ama-assn.org/go/cpt",
    "NCIT": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
}

_CODE = re.compile(r"^\S+( \S+)*$")


def scheme_system(scheme: str | None) -> str | None:
    """The FHIR system of a DICOM coding scheme; None for schemes with no known URI (local ones).

    FHIR systems must be URIs, so an unknown designator is not copied into `system`.
    """
    if scheme is None:
        return None
    return _SCHEMES.get(scheme.upper())


def coding(item: CodeItem) -> dict[str, Any]:
    """A Coding from a DICOM code item: system from the scheme, code, display from the meaning."""
    result: dict[str, Any] = {}
    system = scheme_system(item.scheme)
    if system:
        result["system"] = system
    if item.version and system:
        result["version"] = item.version
    if _CODE.match(item.value):
        result["code"] = item.value
    if item.meaning:
        result["display"] = item.meaning
    return result


def codeable_concept(items: list[CodeItem]) -> dict[str, Any] | None:
    codings = [c for c in (coding(item) for item in items) if c]
    if not codings:
        return None
    concept: dict[str, Any] = {"coding": codings}
    if items[0].meaning:
        concept["text"] = items[0].meaning
    return concept


def is_code(value: str) -> bool:
    """Whether a string is a valid FHIR `code` (no leading/trailing or double whitespace)."""
    return bool(_CODE.match(value))


# Body Part Examined (0018,0015) defined terms -> SNOMED CT (DICOM PS3.16 Annex L / CID 4031).
BODY_PARTS: Final = {
    "ABDOMEN": ("818981001", "Abdomen"),
    "ABDOMENPELVIS": ("818982008", "Abdomen and Pelvis"),
    "ADRENAL": ("23451007", "Adrenal gland"),
    "ANKLE": ("70258002", "Ankle joint"),
    "AORTA": ("15825003", "Aorta"),
    "AXILLA": ("91470000", "Axilla"),
    "BACK": ("77568009", "Back"),
    "BILEDUCT": ("28273000", "Bile duct"),
    "BLADDER": ("89837001", "Urinary bladder"),
    "BRAIN": ("12738006", "Brain"),
    "BREAST": ("76752008", "Breast"),
    "BRONCHUS": ("955009", "Bronchus"),
    "BUTTOCK": ("46862004", "Buttock"),
    "CALCANEUS": ("80144004", "Calcaneus"),
    "CALF": ("53840002", "Calf of leg"),
    "CAROTID": ("69105007", "Carotid Artery"),
    "CEREBELLUM": ("113305005", "Cerebellum"),
    "CERVIX": ("71252005", "Cervix"),
    "CHEEK": ("60819002", "Cheek"),
    "CHEST": ("43799004", "Chest"),
    "CHESTABDOMEN": ("416550000", "Chest and Abdomen"),
    "CHESTABDPELVIS": ("416775004", "Chest, Abdomen and Pelvis"),
    "CIRCLEOFWILLIS": ("11279006", "Circle of Willis"),
    "CLAVICLE": ("51299004", "Clavicle"),
    "COCCYX": ("64688005", "Coccyx"),
    "COLON": ("71854001", "Colon"),
    "CORNEA": ("28726007", "Cornea"),
    "CORONARYARTERY": ("41801008", "Coronary artery"),
    "CSPINE": ("122494005", "Cervical spine"),
    "DUODENUM": ("38848004", "Duodenum"),
    "EAR": ("1910005", "Ear"),
    "ELBOW": ("16953009", "Elbow joint"),
    "ESOPHAGUS": ("32849002", "Esophagus"),
    "EXTREMITY": ("66019005", "Extremity"),
    "EYE": ("81745001", "Eye"),
    "EYELID": ("80243003", "Eyelid"),
    "FACE": ("89545001", "Face"),
    "FEMUR": ("71341001", "Femur"),
    "FINGER": ("7569003", "Finger"),
    "FOOT": ("56459004", "Foot"),
    "GALLBLADDER": ("28231008", "Gallbladder"),
    "HAND": ("85562004", "Hand"),
    "HEAD": ("69536005", "Head"),
    "HEADNECK": ("774007", "Head and Neck"),
    "HEART": ("80891009", "Heart"),
    "HIP": ("24136001", "Hip joint"),
    "HUMERUS": ("85050009", "Humerus"),
    "ILEUM": ("34516001", "Ileum"),
    "ILIUM": ("22356005", "Ilium"),
    "IAC": ("61685007", "Internal Auditory Canal"),
    "JAW": ("661005", "Jaw region"),
    "JEJUNUM": ("21306003", "Jejunum"),
    "KIDNEY": ("64033007", "Kidney"),
    "KNEE": ("72696002", "Knee"),
    "LARYNX": ("4596009", "Larynx"),
    "LEG": ("30021000", "Lower leg"),
    "LIVER": ("10200004", "Liver"),
    "LSPINE": ("122496007", "Lumbar spine"),
    "LUNG": ("39607008", "Lung"),
    "MANDIBLE": ("91609006", "Mandible"),
    "MAXILLA": ("70925003", "Maxilla"),
    "MEDIASTINUM": ("72410000", "Mediastinum"),
    "MOUTH": ("123851003", "Mouth"),
    "NECK": ("45048000", "Neck"),
    "NOSE": ("45206002", "Nose"),
    "ORBIT": ("363654007", "Orbital structure"),
    "OVARY": ("15497006", "Ovary"),
    "PANCREAS": ("15776009", "Pancreas"),
    "PAROTID": ("45289007", "Parotid gland"),
    "PATELLA": ("64234005", "Patella"),
    "PELVIS": ("816092008", "Pelvis"),
    "PENIS": ("18911002", "Penis"),
    "PHARYNX": ("54066008", "Pharynx"),
    "PROSTATE": ("41216001", "Prostate"),
    "RECTUM": ("34402009", "Rectum"),
    "RIB": ("113197003", "Rib"),
    "SACRUM": ("54735007", "Sacrum"),
    "SCAPULA": ("79601000", "Scapula"),
    "SCROTUM": ("20233005", "Scrotum"),
    "SHOULDER": ("16982005", "Shoulder"),
    "SKULL": ("89546000", "Skull"),
    "SPINE": ("421060004", "Spine"),
    "SPLEEN": ("78961009", "Spleen"),
    "STERNUM": ("56873002", "Sternum"),
    "STOMACH": ("69695003", "Stomach"),
    "TESTIS": ("40689003", "Testis"),
    "THIGH": ("68367000", "Thigh"),
    "THUMB": ("76505004", "Thumb"),
    "THYROID": ("69748006", "Thyroid"),
    "TIBIA": ("12611008", "Tibia"),
    "TOE": ("29707007", "Toe"),
    "TONGUE": ("21974007", "Tongue"),
    "TRACHEA": ("44567001", "Trachea"),
    "TSPINE": ("122495006", "Thoracic spine"),
    "URETER": ("87953007", "Ureter"),
    "URETHRA": ("13648007", "Urethra"),
    "UTERUS": ("35039007", "Uterus"),
    "VAGINA": ("76784001", "Vagina"),
    "VULVA": ("45292006", "Vulva"),
    "WHOLEBODY": ("38266002", "Entire body"),
    "WRIST": ("74670003", "Wrist joint"),
    "ZYGOMA": ("13881006", "Zygoma"),
}

# Laterality (0020,0060) / Image Laterality (0020,0062) -> SNOMED CT (DICOM CID 244).
LATERALITY: Final = {
    "R": ("24028007", "Right"),
    "L": ("7771000", "Left"),
    "B": ("51440002", "Right and left"),
    "U": ("66459002", "Unilateral"),
}

# Patient's Sex (0010,0040) -> FHIR administrative gender.
GENDER: Final = {"M": "male", "F": "female", "O": "other"}


def body_part_coding(value: str) -> dict[str, Any]:
    """Body Part Examined as SNOMED CT where Annex L maps it; otherwise the value kept as given."""
    key = re.sub(r"[\s_\-]", "", value.upper())
    mapped = BODY_PARTS.get(key)
    if mapped:
        return {"system": SNOMED, "code": mapped[0], "display": mapped[1]}
    if is_code(value):
        return {"code": value, "display": value}
    return {"display": value}


def laterality_coding(value: str) -> dict[str, Any] | None:
    mapped = LATERALITY.get(value.upper())
    return {"system": SNOMED, "code": mapped[0], "display": mapped[1]} if mapped else None
