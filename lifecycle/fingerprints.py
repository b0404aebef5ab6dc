"""Fingerprints of the state a plan was made against. Pure Python, no Django.

A deployment, a rollback or a merge is shown to the user, then carried out
later; its fingerprint names the exact state it saw, so the action can refuse
when anything it depends on changed in between.
"""

from __future__ import annotations

import hashlib
import json


def fingerprint(state) -> str:
    """A stable hash of JSON-able `state`: equal state, equal fingerprint, whatever the key order."""
    return hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
