"""Schemathesis hooks for test/contract.test.ts (loaded through SCHEMATHESIS_HOOKS=contract_hooks).

Right before each request is sent, whatever phase generated it:
  - `?wait=true` is left out: with no worker polling, a waiting request would hold for minutes;
  - every field that names a host, an address or a URL is moved onto 127.0.0.1 (or a name that
    resolves there), and a provider URL onto our fake Ollama, so what the API stores or would dial
    stays on loopback. The run also happens in a network namespace with only loopback (see
    test/contract-run.ts): this keeps the data representative, the namespace keeps the promise.
Only string values are rewritten: a wrong type stays wrong, so negative cases still test validation.
"""

import hashlib
import os

import schemathesis

LOOPBACK = "127.0.0.1"
# A port nothing listens on: a URL the API would probe fails at once, on loopback.
CLOSED_URL = os.environ.get("CONTRACT_CLOSED_URL", "http://127.0.0.1:9/")
OLLAMA_URL = os.environ.get("CONTRACT_OLLAMA_URL", CLOSED_URL)

ADDRESS_FIELDS = {"ipAddress", "privateAddress", "targetIp"}
URL_FIELDS = {"baseUrl"}
URL_LIST_FIELDS = {"healthUrls"}


def _loopback_name(value: str) -> str:
    # Unique per generated value (hostnames are unique per server) and a *.localhost name, which resolves to loopback.
    return "h" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16] + ".localhost"


def _record_content(record: dict) -> None:
    kind = record.get("type")
    if isinstance(record.get("content"), str):
        record["content"] = {"A": LOOPBACK, "AAAA": "::1"}.get(kind, "localhost") if isinstance(kind, str) else LOOPBACK


def _onto_loopback(value):
    if isinstance(value, list):
        return [_onto_loopback(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key in ADDRESS_FIELDS and isinstance(v, str):
            out[key] = LOOPBACK
        elif key in URL_FIELDS and isinstance(v, str):
            out[key] = OLLAMA_URL
        elif key in URL_LIST_FIELDS and isinstance(v, list):
            out[key] = [CLOSED_URL if isinstance(u, str) else u for u in v]
        elif key == "hostname" and isinstance(v, str):
            out[key] = _loopback_name(v)
        elif key == "records" and isinstance(v, list):
            out[key] = [_onto_loopback(r) for r in v]
            for r in out[key]:
                if isinstance(r, dict):
                    _record_content(r)
        else:
            out[key] = _onto_loopback(v)
    return out


@schemathesis.hook
def before_call(context, case, **kwargs):
    if isinstance(case.query, dict):
        case.query.pop("wait", None)
    if isinstance(case.body, (dict, list)):
        case.body = _onto_loopback(case.body)
