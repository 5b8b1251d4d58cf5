"""RDS / Aurora IAM authentication tokens: a SigV4-presigned `connect` for service `rds-db`.

The token is `HOST:PORT/?QUERY` with the query parameters sorted and X-Amz-Signature last;
`canonical` sorts every parameter, the signature included.
"""
import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote

EXPIRES = 900


def _enc(v: str) -> str:
    return quote(v, safe="-_.~")  # SigV4: everything but RFC 3986 unreserved, %XX uppercase


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def token(host, port, region, user, access_key_id, secret_access_key, session_token, when):
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    scope = f"{day}/{region}/rds-db/aws4_request"
    endpoint = f"{host}:{port}"
    params = {
        "Action": "connect",
        "DBUser": user,
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(EXPIRES),
        "X-Amz-SignedHeaders": "host",
    }
    if session_token is not None:  # given, even empty: signed in
        params["X-Amz-Security-Token"] = session_token
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()))
    canonical_request = "\n".join(
        ["GET", "/", query, f"host:{endpoint}\n", "host", hashlib.sha256(b"").hexdigest()])
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret_access_key).encode("utf-8")
    for part in (day, region, "rds-db", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    tok = f"{endpoint}/?{query}&X-Amz-Signature={signature}"
    params["X-Amz-Signature"] = signature
    canonical = f"{endpoint}/?" + "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()))
    return tok, canonical


def handle(input, env, files) -> dict:
    when = datetime.fromisoformat(input["time"].replace("Z", "+00:00")).astimezone(timezone.utc)
    tok, canonical = token(
        input["host"], input["port"], input["region"], input["user"], input["access_key_id"],
        input["secret_access_key"], input.get("session_token"), when)
    return {"token": tok, "canonical": canonical}
