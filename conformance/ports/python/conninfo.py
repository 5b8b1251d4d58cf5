"""libpq connection strings: PQconninfoParse's rules and the two renderings of SPEC section 5.

parse() follows libpq's conninfo_parse (key=value) and conninfo_uri_parse (postgresql:// and
postgres:// URIs), with libpq's error texts, except that a message never quotes a value (it may
be a password): where libpq quotes a value or the whole URI (percent-decoding and IPv6 errors),
the message names the part at fault instead, and a fragment that follows a password value
(`password=a secret`) is described, not quoted.
"""
import ipaddress
import urllib.parse

# libpq 17's keywords in PQconndefaults order (SPEC section 5's list, plus libpq's
# ssl_min_protocol_version and ssl_max_protocol_version, which that list leaves out).
KEYWORDS = (
    "service user password passfile channel_binding connect_timeout dbname host hostaddr port "
    "client_encoding options application_name fallback_application_name keepalives "
    "keepalives_idle keepalives_interval keepalives_count tcp_user_timeout sslmode "
    "sslnegotiation sslcompression sslcert sslkey sslcertmode sslpassword sslrootcert sslcrl "
    "sslcrldir sslsni requirepeer require_auth ssl_min_protocol_version ssl_max_protocol_version "
    "gssencmode krbsrvname gsslib gssdelegation "
    "replication target_session_attrs load_balance_hosts"
).split()

_KNOWN = frozenset(KEYWORDS)
_SECRET = ("password", "sslpassword")
_SPACE = " \t\n\v\f\r"  # C isspace() in the C locale
_PREFIXES = ("postgresql://", "postgres://")


class ConnInfoError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def parse(text: str) -> dict:
    """PQconninfoParse: keyword -> value for every keyword the string sets."""
    if "\0" in text:  # libpq reads a C string; a NUL would silently cut it
        raise ConnInfoError("connection info string contains a NUL character")
    for prefix in _PREFIXES:  # libpq compares the prefix case-sensitively
        if text.startswith(prefix):
            options = _parse_uri(text[len(prefix):], len(prefix.encode()))
            for keyword, value in options.items():
                if any("\udc80" <= c <= "\udcff" for c in value):
                    raise ConnInfoError(f"the percent-decoded {keyword} is not valid UTF-8")
            return options
    return _parse_keyword_value(text)


def _requiressl(keyword: str, value: str):
    """libpq still reads the old requiressl=1 as sslmode=require (anything else: prefer)."""
    if keyword == "requiressl":
        return "sslmode", "require" if value.startswith("1") else "prefer"
    return keyword, value


def _store(options: dict, keyword: str, value: str) -> None:
    keyword, value = _requiressl(keyword, value)
    if keyword not in _KNOWN:
        raise ConnInfoError(f'invalid connection option "{keyword}"')
    options[keyword] = value


def _parse_keyword_value(s: str) -> dict:
    options: dict = {}
    previous = None
    i, n = 0, len(s)
    while i < n:
        if s[i] in _SPACE:
            i += 1
            continue
        start = i
        while i < n and s[i] != "=" and s[i] not in _SPACE:
            i += 1
        name = s[start:i]
        while i < n and s[i] in _SPACE:
            i += 1
        if i >= n or s[i] != "=":
            if previous in _SECRET:  # `password=a secret`: the rest of a password, not a keyword
                raise ConnInfoError(f'missing "=" after a fragment that follows the value of'
                                    f' "{previous}" (not shown) in connection info string')
            raise ConnInfoError(f'missing "=" after "{name}" in connection info string')
        i += 1
        while i < n and s[i] in _SPACE:
            i += 1
        value = []
        if i < n and s[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ConnInfoError("unterminated quoted string in connection info string")
                c = s[i]
                if c == "\\":
                    i += 1
                    if i < n:
                        value.append(s[i])
                        i += 1
                elif c == "'":
                    i += 1
                    break
                else:
                    value.append(c)
                    i += 1
        else:
            while i < n:
                c = s[i]
                if c in _SPACE:
                    i += 1
                    break
                if c == "\\":
                    i += 1
                    if i < n:  # a trailing backslash escapes nothing
                        value.append(s[i])
                        i += 1
                else:
                    value.append(c)
                    i += 1
        if previous in _SECRET and _requiressl(name, "")[0] not in _KNOWN:
            raise ConnInfoError(f'invalid connection option: a fragment that follows the value of'
                                f' "{previous}" (not shown)')
        _store(options, name, "".join(value))
        previous = name
    return options


def _hexval(c: str):
    return int(c, 16) if c and c in "0123456789abcdefABCDEF" else None


def _decode(s: str, what: str) -> str:
    """conninfo_uri_decode; `what` names the part in errors instead of quoting it."""
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "%":
            out += c.encode("utf-8")
            i += 1
            continue
        hi = _hexval(s[i + 1]) if i + 1 < n else None
        lo = _hexval(s[i + 2]) if hi is not None and i + 2 < n else None
        if hi is None or lo is None:
            raise ConnInfoError(f"invalid percent-encoded token in the URI's {what}")
        if hi == 0 and lo == 0:
            raise ConnInfoError(f"forbidden value %00 in percent-encoded value (the URI's {what})")
        out.append(hi * 16 + lo)
        i += 3
    return out.decode("utf-8", "surrogateescape")  # checked once the whole URI is read


def _parse_uri(rest: str, prefix_len: int) -> dict:
    options: dict = {}
    p, n = 0, len(rest)

    def at(k):
        return rest[k] if k < n else ""

    # user[:password]@ : only when an '@' comes before the first '/'
    q = p
    while q < n and rest[q] not in "@/":
        q += 1
    if at(q) == "@":
        q = 0
        while rest[q] not in ":@":
            q += 1
        if q > 0:
            _store(options, "user", _decode(rest[:q], "user name"))
        if rest[q] == ":":
            pw_start = q + 1
            q = rest.index("@", pw_start)
            if q > pw_start:
                _store(options, "password", _decode(rest[pw_start:q], "password"))
        p = q + 1

    hosts, ports = [], []
    while True:
        if at(p) == "[":
            p += 1
            start = p
            while p < n and rest[p] != "]":
                p += 1
            if p >= n:
                raise ConnInfoError(
                    'end of string reached when looking for matching "]" in IPv6 host address in URI')
            if p == start:
                raise ConnInfoError("IPv6 host address may not be empty in URI")
            host = rest[start:p]
            p += 1
            if p < n and rest[p] not in ":/?,":
                raise ConnInfoError(
                    f'unexpected character "{rest[p]}" at position'
                    f' {prefix_len + len(rest[:p].encode()) + 1}'
                    ' in URI (expected ":" or "/")')
        else:
            start = p
            while p < n and rest[p] not in ":/?,":
                p += 1
            host = rest[start:p]
        hosts.append(host)
        term = at(p)
        if term == ":":
            p += 1
            start = p
            while p < n and rest[p] not in "/?,":
                p += 1
            ports.append(rest[start:p])
            term = at(p)
        else:
            ports.append("")
        if term != ",":
            break
        p += 1

    hostlist, portlist = ",".join(hosts), ",".join(ports)
    if hostlist:
        _store(options, "host", _decode(hostlist, "host"))
    if portlist:
        _store(options, "port", _decode(portlist, "port"))

    if term and term != "?":  # '/': a dbname follows
        p += 1
        start = p
        while p < n and rest[p] != "?":
            p += 1
        if p > start:
            _store(options, "dbname", _decode(rest[start:p], "database name"))
        term = at(p)
    if term:  # '?': query parameters
        _parse_params(rest[p + 1:], options)
    return options


def _parse_params(params: str, options: dict) -> None:
    parts = params.split("&")
    if parts[-1] == "":  # a trailing '&' ends the query (libpq stops at the end of the text)
        parts.pop()
    for part in parts:
        if "=" not in part:
            raise ConnInfoError(f'missing key/value separator "=" in URI query parameter: "{part}"')
        keyword, value = part.split("=", 1)
        if "=" in value:
            raise ConnInfoError(f'extra key/value separator "=" in URI query parameter: "{keyword}"')
        keyword = _decode(keyword, "query parameter name")
        value = _decode(value, f'query parameter "{keyword}"')
        if keyword == "ssl" and value == "true":
            keyword, value = "sslmode", "require"
        keyword, value = _requiressl(keyword, value)
        if keyword not in _KNOWN:
            raise ConnInfoError(f'invalid URI query parameter: "{keyword}"')
        options[keyword] = value


# ---------------------------------------------------------------------------------- rendering

def _ordered(m: dict):
    unknown = set(m) - _KNOWN
    if unknown:
        raise ValueError(f"not libpq keywords: {sorted(unknown)}")
    return [(k, m[k]) for k in KEYWORDS if k in m]


def _quote_kv(v: str) -> str:
    if v == "" or any(c in _SPACE or c in "'\\" for c in v):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return v


def to_keyword_value(m: dict) -> str:
    return " ".join(f"{k}={_quote_kv(v)}" for k, v in _ordered(m))


def _enc(v: str) -> str:
    return urllib.parse.quote(v, safe="", encoding="utf-8")  # leaves A-Z a-z 0-9 - . _ ~


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _netloc_host(host: str) -> str:
    if _is_ipv6(host):
        return "[" + ":".join(_enc(part) for part in host.split(":")) + "]"
    return _enc(host)


def to_uri(m: dict) -> str:
    items = _ordered(m)
    placed = set()
    out = ["postgresql://"]
    user, password = m.get("user", ""), m.get("password", "")
    if user or password:
        if user:
            out.append(_enc(user))
            placed.add("user")
        if password:
            out.append(":" + _enc(password))
            placed.add("password")
        out.append("@")
    if "host" in m:
        hosts = m["host"].split(",")
        port = m.get("port")
        if port is None:
            ports = [""] if len(hosts) == 1 else None
        else:
            ports = port.split(",") if port != "" else None
        if ports is not None and len(ports) == len(hosts) and all(hosts):
            out.append(",".join(
                _netloc_host(h) + (":" + _enc(pt) if pt else "") for h, pt in zip(hosts, ports)))
            placed.update(("host", "port"))
    dbname = m.get("dbname", "")
    if dbname:
        out.append("/" + _enc(dbname))
        placed.add("dbname")
    query = [f"{k}={_enc(v)}" for k, v in items if k not in placed]
    if query:
        if not dbname:
            out.append("/")
        out.append("?" + "&".join(query))
    return "".join(out)


# ---------------------------------------------------------------------------------- the kind

def handle(input, env, files) -> dict:
    try:
        m = parse(input)
    except ConnInfoError as e:
        return {"error": {"class": "config", "kind": "conninfo", "message": e.message}}
    kv, uri = to_keyword_value(m), to_uri(m)
    for rendering in (kv, uri):
        if parse(rendering) != m:
            raise AssertionError("a rendering does not parse back to the same map")
    return {"map": m, "keyword_value": kv, "uri": uri}
