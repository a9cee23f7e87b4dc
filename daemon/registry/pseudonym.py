"""The pseudonymous participant key used in exports and audit lists: a keyed hash of Patient ID + issuer.

HMAC-SHA256 with the site's secret (``[registry] pseudonym_key``): stable for a participant across
exports (so the registry can link rounds), not reversible without the key, and different between
sites that use different keys.
"""

from __future__ import annotations

import hashlib
import hmac


class PseudonymKeyMissing(ValueError):
    """No key is configured: a pseudonymised export cannot be made."""


def participant_key(patient_id: str, issuer: str, key: str) -> str:
    """``P`` + 20 hex digits of HMAC-SHA256(key, issuer US patient_id)."""
    if not key:
        raise PseudonymKeyMissing(
            "set [registry] pseudonym_key (or NODULED_REGISTRY__PSEUDONYM_KEY) to a long random secret:"
            " exports are pseudonymised with it"
        )
    digest = hmac.new(key.encode(), f"{issuer}\x1f{patient_id}".encode(), hashlib.sha256).hexdigest()
    return "P" + digest[:20].upper()
