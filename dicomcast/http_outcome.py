"""What dicomcast keeps of a FHIR OperationOutcome: severity, issue code and element path only.

Part of the HTTP boundary (http.py summarises any upstream's JSON error body with it), so it lives
beside http.py: the DICOM sources share that boundary and know nothing of the FHIR package.

Servers fill `diagnostics` and `details.text` with the values they rejected (a patient's name, an
identifier), so free text is never kept. The kept parts are checked against their FHIR grammar, so
a server cannot smuggle text through them either: severity and code are tokens of the issue-severity
and issue-type value sets, and an element path keeps a leading resource type and element names with indexes up to the first
function call, quote or other character (`Patient.name.where(family='X')` -> `Patient.name`).
"""

from __future__ import annotations

import re
from typing import Any

SEVERITIES = frozenset({"fatal", "error", "warning", "information"})
MAX_ISSUES = 5
_CODE = re.compile(r"^[a-z][a-z-]{0,39}$")
# A resource type dicomcast writes (or the Bundle around them), then element names (lower camel case).
_RESOURCE_TYPES = "Bundle|Patient|ImagingStudy|Endpoint|Observation"
_PATH = re.compile(rf"^(?:{_RESOURCE_TYPES})(?:\[\d{{1,5}}\])?(?:\.[a-z][A-Za-z0-9_]{{0,63}}(?:\[\d{{1,5}}\])?)*")


def element_path(expression: Any) -> str | None:
    """The leading element path of a FHIRPath expression or location, or None."""
    if not isinstance(expression, str):
        return None
    text = expression.strip()
    match = _PATH.match(text)
    if match is None:
        return None
    path = match.group(0)
    if text[match.end() : match.end() + 1] == "(":  # `name.where(` : the last name is a function
        path = path.rpartition(".")[0]
    return path or None


def issue_summary(issue: Any) -> str | None:
    """`error invalid at Patient.birthDate`, or None when nothing safe is left."""
    if not isinstance(issue, dict):
        return None
    severity = issue.get("severity")
    code = issue.get("code")
    parts = [severity if isinstance(severity, str) and severity in SEVERITIES else "?"]
    parts.append(code if isinstance(code, str) and _CODE.match(code) else "?")
    paths = [element_path(p) for key in ("expression", "location") for p in _strings(issue.get(key))]
    kept = sorted({p for p in paths if p})
    if kept:
        parts.append("at " + ", ".join(kept[:3]))
    return None if parts[:2] == ["?", "?"] and not kept else " ".join(parts)


def outcome_summary(body: Any) -> str:
    """Issues of an OperationOutcome as `severity code at path; ...`; "" when it is not one."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    issues = body.get("issue")
    if not isinstance(issues, list):
        return ""
    summaries = [s for s in (issue_summary(i) for i in issues[:MAX_ISSUES]) if s]
    more = f" (+{len(issues) - MAX_ISSUES} more)" if len(issues) > MAX_ISSUES else ""
    return "; ".join(summaries) + more


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
