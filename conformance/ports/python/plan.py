"""Kinds `plan` and `error`: a catalog YAML to the plan JSON, or a CONFIG-ERROR (SPEC section 4).

The steps follow the README's Configuration reference: read the YAML (YAML 1.2 scalars, no
duplicate keys, bounded aliases and depth), find the catalog, refuse unknown keys, expand
`${...}` in string values, check each value, check the keys that cannot go together, then apply
the provider's preset (environment fallbacks, TLS defaults, credential sources).

No message quotes a value that came from `env` (a `${...}` result, a provider fallback, a
connection string that came from either): such values are *tainted* and described instead.
"""

import re

import yaml

import conninfo
from expand import ExpandError, expand

MAX_BYTES = 4 << 20
MAX_DEPTH = 128
MAX_ALIAS_NODES = 10_000
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PROVIDERS = ("gcp", "aws", "azure", "self-hosted")
CLOUDS = ("gcp", "aws", "azure")
DEFAULT_SOCKET = "/var/run/postgresql"
RDS_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

# key: (type, details); "str" values must not be empty.
KEYS = {
    "type": ("choice", ("postgres",)),
    "connection_string": ("str",),
    "provider": ("choice", PROVIDERS),
    "host": ("str",),
    "port": ("int", 1, 65535),
    "database": ("str",),
    "user": ("str",),
    "sslmode": ("choice", SSLMODES),
    "sslrootcert": ("str",),
    "sslcert": ("str",),
    "sslkey": ("str",),
    "connect_timeout": ("int", 0, 2**31 - 1),
    "application_name": ("str",),
    "target_session_attrs": ("choice", ("any", "read-write", "read-only", "primary", "standby",
                                        "prefer-standby")),
    "min_size": ("int", 0, 2**31 - 1),
    "max_size": ("int", 1, 2**31 - 1),
    "auto_migrate": ("bool",),
    "lazy": ("bool",),
    "max_lifetime": ("int", 0, 2**31 - 1),
    "token_refresh": ("choice", ("ahead", "lazy")),
    "project": ("str",),
    "region": ("str",),
    "instance": ("str",),
    "connection_name": ("str",),
    "ip_type": ("choice", ("socket", "public", "private")),
    "socket_dir": ("str",),
    "iam_auth": ("bool",),
    "ssl_bundle": ("str",),
    "ssl_bundle_url": ("str",),
    "ssl_bundle_sha256": ("str",),
    "credentials": ("map",),
}
CRED_KEYS = {
    "source": ("choice", ("env", "gcp", "aws", "azure")),
    "username_key": ("str",),
    "password_key": ("str",),
    "prefix": ("str",),
    "project_id": ("str",),
    "secret_prefix": ("str",),
    "secret_name": ("str",),
    "region": ("str",),
    "version": ("str",),
    "endpoint": ("str",),
    "endpoint_url": ("str",),
    "vault_url": ("str",),
}
# Keys that belong to some providers (or credential sources) only.
PROVIDER_ONLY = {
    "token_refresh": CLOUDS, "iam_auth": CLOUDS, "region": ("gcp", "aws"),
    "project": ("gcp",), "instance": ("gcp",), "connection_name": ("gcp",), "ip_type": ("gcp",),
    "socket_dir": ("gcp",), "ssl_bundle": ("aws",), "ssl_bundle_url": ("aws",),
    "ssl_bundle_sha256": ("aws",),
}
SOURCE_ONLY = {
    "prefix": ("env",), "project_id": ("gcp",), "secret_prefix": ("gcp", "aws", "azure"),
    "secret_name": ("gcp", "aws"), "region": ("aws",), "version": ("gcp",),
    "endpoint": ("gcp",), "endpoint_url": ("aws",), "vault_url": ("azure",),
}
# What a connection string replaces: the host, TLS and provider keys.
STRING_EXCLUDES = ("host", "port", "database", "user", "sslmode", "sslrootcert", "sslcert",
                   "sslkey", "connect_timeout", "application_name", "target_session_attrs",
                   *PROVIDER_ONLY)
KEY_HABITS = {"dbname": "database", "db": "database", "username": "user", "hostname": "host",
              "connection_url": "connection_string", "dsn": "connection_string",
              "url": "connection_string"}
CRED_HABITS = {"password": "password_key", "username": "username_key", "user": "username_key",
               "password_env": "password_key", "username_env": "username_key"}
CHOICE_HABITS = {"google": "gcp", "gce": "gcp", "cloudsql": "gcp", "amazon": "aws", "rds": "aws",
                 "aurora": "aws", "microsoft": "azure", "local": "self-hosted"}
# The TLS options of a connection string, checked as libpq checks them before connecting.
STRING_CHOICES = {"sslmode": SSLMODES, "sslnegotiation": ("postgres", "direct")}
SECRET_KEYWORDS = ("password", "sslpassword")

# What this port does with each libpq keyword it does not simply honour (SPEC.md, section 4,
# step 7): refused outright, or honoured for the listed values only (an empty value is libpq's
# "unset" and always honoured). The same table as the reference crate's.
REFUSED = frozenset((
                     "krbsrvname", "gsslib", "gssdelegation", "replication"))
HONOURED_VALUES = {
    "client_encoding": ("UTF8", "UTF-8", "UNICODE"),  # compared without regard to case
    "gssencmode": ("disable", "prefer"),
}


TLS_VERSIONS = ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3")
# libpq's target_session_attrs values, compared exactly.
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")


def _tls_versions(params, error):
    """libpq's checks of ssl_min_protocol_version / ssl_max_protocol_version (values, then the
    range with the default minimum TLSv1.2 when absent); then TLS 1.0 and 1.1, which this port
    does not offer, are refused."""
    bounds = {}
    for keyword, default in (("ssl_min_protocol_version", "TLSv1.2"),
                             ("ssl_max_protocol_version", None)):
        value = params.get(keyword, default)
        if value:
            if value.lower() not in TLS_VERSIONS:
                raise error("invalid-value", f'invalid {keyword} value: "{value}"')
            bounds[keyword] = TLS_VERSIONS.index(value.lower())
    lo, hi = bounds.get("ssl_min_protocol_version"), bounds.get("ssl_max_protocol_version")
    if lo is not None and hi is not None and lo != 0 and lo > hi:
        raise error("conflict", "invalid SSL protocol version range")
    for keyword, i in ((k, bounds.get(k)) for k in ("ssl_min_protocol_version",
                                                    "ssl_max_protocol_version")):
        if i is not None and i < 2:
            raise error("unsupported", f'connection option "{keyword}" is supported with '
                        '"TLSv1.2", "TLSv1.3" only')


def _libpq_int(value, keyword):
    """libpq's parse_int_param: white space around an optionally signed decimal C int."""
    text = value.strip(" \t\n\v\f\r")
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit() or not -2**31 <= int(text) < 2**31:
        return None, f'invalid integer value "{value}" for connection option "{keyword}"'
    return int(text), None


def _keepalives(params, hosts, error):
    """libpq reads the keepalive keywords for TCP hosts only, the timings only with keepalives
    on (keepalives itself by libpq's integer rules)."""
    if all(_is_socket(h["host"]) and "hostaddr" not in h for h in hosts):
        return
    if "keepalives" in params:
        on, problem = _libpq_int(params["keepalives"], "keepalives")
        if problem:
            raise error("invalid-value", problem + "; keepalives parameter must be an integer")
        if on == 0:
            return
    for keyword in ("keepalives_idle", "keepalives_interval", "keepalives_count",
                    "tcp_user_timeout"):
        if keyword in params:
            _, problem = _libpq_int(params[keyword], keyword)
            if problem:
                raise error("invalid-value", problem)


def _require_auth(value):
    """libpq 16's require_auth list (connectOptions2): the error text, or None."""
    if not value:
        return None
    negated = False
    allowed, bits_of = 0, {"password": 1 << 3, "md5": 1 << 5, "gss": (1 << 7) | (1 << 8),
                           "sspi": (1 << 9) | (1 << 8),
                           "scram-sha-256": (1 << 10) | (1 << 11) | (1 << 12)}
    for index, part in enumerate(value.split(",")):
        method = part
        if part.startswith("!"):
            if index == 0:
                allowed = (1 << 32) - 1
            elif not negated:
                return (f'negative require_auth method "{part}" cannot be mixed with '
                        "non-negative methods")
            negated = True
            method = part[1:]
        elif negated:
            return f'require_auth method "{part}" cannot be mixed with negative methods'
        if method == "none":
            continue
        bits = bits_of.get(method)
        if bits is None:
            return f'invalid require_auth value: "{method}"'
        if (allowed & bits == 0) if negated else (allowed & bits == bits):
            return f'require_auth method "{part}" is specified more than once'
        allowed = allowed & ~bits if negated else allowed | bits
    return None


def _auto_is_utf8(env):
    """Whether libpq's client_encoding=auto gives UTF8: the code set of LC_ALL, else LC_CTYPE,
    else LANG."""
    locale = next((env[n] for n in ("LC_ALL", "LC_CTYPE", "LANG") if env.get(n)), "C")
    codeset = locale.partition(".")[2].partition("@")[0]
    return "".join(c for c in codeset if c.isalnum()).lower() == "utf8"


def _refused_keyword(params, env=None):
    """The first keyword of params, in libpq's order, that this port refuses, or None."""
    for keyword in conninfo.KEYWORDS:
        value = params.get(keyword)
        if not value:
            continue
        if keyword == "client_encoding" and value == "auto":
            if _auto_is_utf8(env or {}):
                continue
            return keyword, ('connection option "client_encoding" is supported with "UTF8" '
                             'only: "auto" follows the locale, whose encoding is not UTF8 here')
        if keyword in REFUSED:
            return keyword, f'connection option "{keyword}" is not supported'
        if keyword in HONOURED_VALUES:
            honoured = HONOURED_VALUES[keyword]
            if keyword == "client_encoding":
                ok = value.upper() in honoured
            else:
                ok = value in honoured
            if not ok:
                return keyword, f'connection option "{keyword}" is supported with ' + (
                    ", ".join(f'"{h}"' for h in honoured) or "no value") + " only"
    return None


class ConfigError(Exception):
    def __init__(self, kind, path, message, at=None):
        super().__init__(message)
        self.kind, self.path, self.message = kind, path, message
        self.line, self.col = at if at else (None, None)

    def result(self):
        return {"error": {"class": "config", "kind": self.kind, "path": self.path,
                          "message": self.message, "line": self.line, "col": self.col}}


def handle(input, env, files):
    if not isinstance(input, str):
        return vector_error("the input must be the catalog's YAML text")
    try:
        return {"plan": build(input, env, files).plan}
    except ConfigError as e:
        return e.result()


def vector_error(message):
    """The answer to an input a kind cannot take (SPEC section 4)."""
    return {"error": {"class": "config", "kind": "vector", "message": message}}


# ---------------------------------------------------------------------------------------------
# Reading the YAML

def _pos(mark):
    return (mark.line + 1, mark.column + 1)


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
              yaml.composer.Composer, yaml.resolver.BaseResolver):
    """PyYAML's composer without implicit typing (scalars are resolved by _scalar, YAML 1.2),
    counting nesting depth and the nodes that aliases copy."""

    def __init__(self, text):
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.BaseResolver.__init__(self)
        self.depth, self.copied, self.measured = 0, 0, {}

    def compose_node(self, parent, index):
        if not self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        at = _pos(self.peek_event().start_mark)
        node = super().compose_node(parent, index)
        size, height = self._measure(node, set())
        self.copied += size
        if self.copied > MAX_ALIAS_NODES:
            raise ConfigError("syntax", None,
                              f"aliases expand to more than {MAX_ALIAS_NODES} nodes", at)
        if self.depth + height > MAX_DEPTH:
            raise ConfigError("syntax", None,
                              f"collections nest more than {MAX_DEPTH} levels deep", at)
        return node

    def _nest(self, compose, anchor):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConfigError("syntax", None, f"collections nest more than {MAX_DEPTH} levels deep",
                              _pos(self.peek_event().start_mark))
        node = compose(self, anchor)
        self.depth -= 1
        return node

    def compose_sequence_node(self, anchor):
        return self._nest(yaml.composer.Composer.compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor):
        return self._nest(yaml.composer.Composer.compose_mapping_node, anchor)

    def _measure(self, node, active):
        """(nodes, collection height) of a node, aliases inside it counted in full."""
        if id(node) in self.measured:
            return self.measured[id(node)]
        if isinstance(node, yaml.ScalarNode):
            return (1, 0)
        if id(node) in active:
            raise ConfigError("syntax", None, "an alias refers to a collection that holds it",
                              _pos(node.start_mark))
        active.add(id(node))
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair]
        sizes = [self._measure(c, active) for c in children]
        active.discard(id(node))
        result = (1 + sum(s for s, _ in sizes), 1 + max((h for _, h in sizes), default=0))
        self.measured[id(node)] = result
        return result


_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


def _scalar(node):
    """A scalar node's value by YAML 1.2's core schema (quoted and block scalars are strings)."""
    v = node.value
    if node.style is not None:
        return v
    if v in ("", "~", "null", "Null", "NULL"):
        return None
    if v in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return v.lower() == "true"
    if _INT.fullmatch(v):
        return int(v, 0) if v[:2] in ("0o", "0x") else int(v)
    if _FLOAT.fullmatch(v):
        return float(v.lower().replace(".inf", "inf").replace(".nan", "nan"))
    return v


def _load(text):
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise ConfigError("syntax", None, f"the text is larger than {MAX_BYTES} bytes (4 MiB)")
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError("syntax", None, f"not valid YAML: {getattr(e, 'problem', None) or e}",
                          _pos(mark) if mark else None)
    finally:
        loader.dispose()
    _no_duplicates(root, set())
    return root


def _no_duplicates(node, seen):
    if node is None or isinstance(node, yaml.ScalarNode) or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _no_duplicates(child, seen)
        return
    keys = set()
    for k, v in node.value:
        key = _scalar(k) if isinstance(k, yaml.ScalarNode) else id(k)
        if key in keys:
            raise ConfigError("syntax", None, f"duplicate key `{_show(str(key))}`",
                              _pos(k.start_mark))
        keys.add(key)
        _no_duplicates(v, seen)


def _show(text):
    """Text with control characters escaped, so that a message stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# ---------------------------------------------------------------------------------------------
# Values

class _Value:
    """A catalog value with where it was written and whether it came from the environment."""

    def __init__(self, v, key, node=None, tainted=False):
        self.v, self.key, self.node, self.tainted = v, key, node, tainted

    @property
    def key_at(self):
        return _pos(self.key.start_mark) if self.key is not None else None

    @property
    def at(self):
        return _pos(self.node.start_mark) if self.node is not None else None


def _describe(value):
    """How a message shows a string value: quoted when written in the YAML and short, else
    described (a value from the environment, or a long one that may hold a secret)."""
    v = value.v
    if value.tainted:
        return "the value from the environment"
    if len(v) <= 40 and v.isprintable():
        return f"`{v}`"
    return f"a {len(v)}-character value"


def _distance(a, b):
    """Optimal string alignment distance (Levenshtein plus adjacent transpositions)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def _suggest(word, choices, habits):
    if word in habits:
        return habits[word]
    normal = word.lower().replace("_", "-")
    for c in choices:
        if c.replace("_", "-") == normal:
            return c
    best = min(choices, key=lambda c: _distance(word, c))
    return best if _distance(word, best) <= max(1, min(2, len(word) // 3)) else None


# ---------------------------------------------------------------------------------------------
# The plan

class Plan:
    """The result of build(): the plan JSON, the libpq keywords (with any password) and the
    settings the credentials kinds need."""

    def __init__(self, plan, params, catalog):
        self.plan, self.params, self.catalog = plan, params, catalog


def build(text, env, files):
    return _Catalog(text, env, set(files)).plan()


class _Catalog:
    def __init__(self, text, env, files):
        self.env, self.files, self.warnings = env, files, []
        root = _load(text)
        node, self.prefix = self._find(root)
        self.vals = self._read(node, KEYS, KEY_HABITS, "")
        cred = self.vals.get("credentials")
        self.cred_written = cred
        self.cred = {}
        if cred is not None:
            if not isinstance(cred.node, yaml.MappingNode):
                raise self.error("invalid-value", "credentials",
                                 "`credentials` must be a mapping", cred.at)
            self.cred = self._read(cred.node, CRED_KEYS, CRED_HABITS, "credentials.")
        for key, value in self.vals.items():
            self._expand(key, value)
        for key, value in self.cred.items():
            self._expand("credentials." + key, value)
        for key, value in self.vals.items():
            self._check(key, value, KEYS[key])
        for key, value in self.cred.items():
            self._check("credentials." + key, value, CRED_KEYS[key])

    # -- finding the catalog, reading keys ------------------------------------------------------

    def _find(self, root):
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError("no-catalog", None, "the text holds no mapping: neither an agent "
                              "file with settings.ltm.catalog nor a bare catalog")
        keys = {_scalar(k) if isinstance(k, yaml.ScalarNode) else None: v for k, v in root.value}
        if "settings" not in keys:
            return root, ""
        node, path = root, []
        for name in ("settings", "ltm", "catalog"):
            children = {_scalar(k): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            if name not in children:
                raise ConfigError("no-catalog", ".".join(path) or None,
                                  f"the agent file has no `{'.'.join(path + [name])}`")
            node = children[name]
            path.append(name)
            if not isinstance(node, yaml.MappingNode):
                empty = isinstance(node, yaml.ScalarNode) and _scalar(node) is None
                raise ConfigError("no-catalog", ".".join(path),
                                  f"the agent file has an empty `{name}`" if empty else
                                  f"the agent file's `{'.'.join(path)}` is not a mapping",
                                  _pos(node.start_mark))
        return node, "settings.ltm.catalog."

    def _read(self, node, known, habits, sub):
        out = {}
        for k, v in node.value:
            key = name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            if key not in known:
                raise self.error("unknown-key", sub + name, self._unknown(name, known, habits, sub),
                                 _pos(k.start_mark))
            if known[key][0] != "map" and not isinstance(v, yaml.ScalarNode):
                raise self.error("invalid-value", sub + name,
                                 f"`{sub}{name}` takes a single value, not a list or mapping",
                                 _pos(v.start_mark))
            out[key] = _Value(_scalar(v) if isinstance(v, yaml.ScalarNode) else None, k, v)
        return out

    @staticmethod
    def _unknown(name, known, habits, sub):
        message = f"unknown key `{_show(name)}`"
        if name == "password" and not sub:
            return message + ": a password does not belong in YAML; use `credentials` (the " \
                             "environment or a secrets manager) or `iam_auth`"
        hint = _suggest(name, [k for k in known], habits)
        if hint:
            message += f"; did you mean `{hint}`?"
        if hint in ("password_key", "username_key"):
            message += f" (`{hint}` names where the value is found, not the value)"
        return message

    def error(self, kind, path, message, at=None):
        return ConfigError(kind, self.prefix + path if path else None, message, at)

    def warn(self, code, path, message):
        self.warnings.append({"code": code, "path": self.prefix + path if path else None,
                              "message": message})

    # -- expansion and value checks -------------------------------------------------------------

    def _expand(self, path, value):
        if not isinstance(value.v, str):
            return
        try:
            expanded = expand(value.v, self.env)
        except ExpandError:
            raise self.error("expansion", path, _expansion_problem(value.v, self.env), value.at)
        value.tainted = "${" in value.v.replace("$$", "")
        value.v = expanded

    def _check(self, path, value, spec):
        kind, v = spec[0], value.v
        if kind == "map":
            return
        if v is None:
            raise self.error("invalid-value", path, f"`{path}` has no value", value.at)
        if kind in ("str", "choice"):
            if kind == "str" and isinstance(v, (int, float)) and not isinstance(v, bool):
                v = value.v = value.node.value  # a number where text is expected: as written
            if not isinstance(v, str):
                raise self.error("invalid-value", path, f"`{path}` expects a string, not "
                                 f"{type(v).__name__} {_show(str(v))}", value.at)
            if v == "":
                raise self.error("invalid-value", path, f"`{path}` must not be empty" + (
                    ": the ${...} reference gave an empty value" if value.tainted else ""),
                    value.at)
            if kind == "choice" and v not in spec[1]:
                message = f"{_describe(value)} is not one of {', '.join(spec[1])}"
                hint = None if value.tainted else _suggest(v, spec[1], CHOICE_HABITS)
                if hint:
                    message += f"; did you mean `{hint}`?"
                raise self.error("invalid-value", path, f"`{path}`: {message}", value.at)
        elif kind == "bool":
            if isinstance(v, str) and v in ("true", "false"):
                value.v = v == "true"
            elif not isinstance(v, bool):
                raise self.error("invalid-value", path, f"`{path}` expects true or false "
                                 "(YAML 1.2 booleans; `yes` and `on` are strings)", value.at)
        elif kind == "int":
            if isinstance(v, str) and re.fullmatch(r"[0-9]+", v):
                v = value.v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.error("invalid-value", path, f"`{path}` expected an integer", value.at)
            if not spec[1] <= v <= spec[2]:
                shown = "the value from the environment" if value.tainted else str(v)
                raise self.error("invalid-value", path, f"`{path}` must be between {spec[1]} "
                                 f"and {spec[2]}; {shown} is not", value.at)

    # -- conflicts ------------------------------------------------------------------------------

    def conflict(self, a, b, message, sub=""):
        """A conflict between two written keys, reported at the later one."""
        table = self.cred if sub else self.vals
        later = max((k for k in (a, b) if k in table), key=lambda k: table[k].key_at)
        return self.error("conflict", sub + later, message, table[later].key_at)

    def _check_conflicts(self):
        vals, provider = self.vals, self.provider
        if "connection_string" in vals:
            for key in vals:
                if key == "provider" and provider != "self-hosted" or key in STRING_EXCLUDES:
                    raise self.conflict("connection_string", key, "`connection_string` cannot "
                                        f"go with `{key}`: the string already says it")
        else:
            for key in vals:
                if provider not in PROVIDER_ONLY.get(key, (provider,)):
                    raise self.conflict("provider", key, f"`{key}` applies to provider "
                                        f"{' or '.join(PROVIDER_ONLY[key])} only (provider is "
                                        f"{provider})")
        for a, b in (("connection_name", "project"), ("connection_name", "region"),
                     ("connection_name", "instance"), ("ssl_bundle", "sslrootcert")):
            if a in vals and b in vals:
                raise self.conflict(a, b, f"`{a}` and `{b}` cannot go together")
        bundle = vals.get("ssl_bundle")
        for key in ("ssl_bundle_url", "ssl_bundle_sha256"):
            if key in vals and (bundle is None or bundle.v != "auto"):
                raise self.conflict("ssl_bundle", key, f"`{key}` applies only with "
                                    "`ssl_bundle: auto`" + ("; ssl_bundle names a file" if bundle
                                                            else ""))
        if "token_refresh" in vals and not self.get("iam_auth"):
            raise self.conflict("iam_auth", "token_refresh",
                                "`token_refresh` applies only with `iam_auth: true`")
        if "min_size" in vals and "max_size" in vals and self.get("min_size") > self.get("max_size"):
            raise self.conflict("min_size", "max_size", "`min_size` is greater than `max_size`")
        if "min_size" in vals and "max_size" not in vals and self.get("min_size") > 10:
            raise self.error("invalid-value", "min_size", "`min_size` is greater than "
                             "max_size's default (10); raise `max_size` too", vals["min_size"].at)
        source = self.source
        for key in self.cred:
            if source not in SOURCE_ONLY.get(key, (source,)):
                raise self.conflict("source", key, f"`credentials.{key}` applies to source "
                                    f"{' or '.join(SOURCE_ONLY[key])} only (source is {source})",
                                    "credentials.")
        if "secret_prefix" in self.cred and "secret_name" in self.cred:
            raise self.conflict("secret_prefix", "secret_name", "`credentials.secret_prefix` and "
                                "`credentials.secret_name` cannot go together", "credentials.")

    def get(self, key, default=None):
        value = self.vals.get(key)
        return default if value is None else value.v

    def cget(self, key, default=None):
        value = self.cred.get(key)
        return default if value is None else value.v

    # -- the plan -------------------------------------------------------------------------------

    def _default_session_attrs(self):
        """The preset's target_session_attrs when the YAML writes none: writers read-write, an
        Aurora reader endpoint prefer-standby; self-hosted, and endpoints (or names) of unknown
        role, none."""
        if self.provider in ("gcp", "azure"):
            return "read-write"
        if self.provider == "aws":
            return {"instance": "read-write", "cluster": "read-write", "proxy": "read-write",
                    "cluster-ro": "prefer-standby"}.get(self.aws_endpoint)
        return None

    def plan(self):
        self.provider = self.get("provider", "self-hosted")
        self.source = self.cget("source", "env")
        self._check_conflicts()
        self.iam = bool(self.get("iam_auth"))
        self.region = self.icn = self.aws_endpoint = self.ssl_bundle = None
        self.user, self.user_source = self.get("user"), "literal" if "user" in self.vals else None
        if "connection_string" in self.vals:
            params, hosts, sslmode, root = self._connection_string()
            provider = "connection-string"
        else:
            preset = getattr(self, "_" + self.provider.replace("-", "_"))
            hosts, port, dbname, sslmode, root = preset()
            params = {"user": self.user, "connect_timeout": self.get("connect_timeout"),
                      "dbname": dbname, "host": hosts[0]["host"], "port": port,
                      "application_name": self.get("application_name"), "sslmode": sslmode,
                      "sslcert": self.get("sslcert"), "sslkey": self.get("sslkey"),
                      "sslrootcert": root[0] if root[2] else None,
                      "target_session_attrs": self.get("target_session_attrs",
                                                       self._default_session_attrs())}
            params = {k: str(v) for k, v in params.items() if v is not None}
            provider = self.provider
        rootcert, present = root[0], root[1]
        tls, tls_verify = _tls(sslmode, rootcert, present, hosts)
        _tls_versions(params, lambda kind, message: self.error(
            kind, "connection_string", message, self.vals["connection_string"].at))
        if "connect_timeout" in params:
            _, problem = _libpq_int(params["connect_timeout"], "connect_timeout")
            if problem:
                raise self.error("invalid-value", "connection_string", problem,
                                 self.vals["connection_string"].at)
        _keepalives(params, hosts, lambda kind, message: self.error(
            kind, "connection_string", message, self.vals["connection_string"].at))
        for problem in (_require_auth(params.get("require_auth")),
                        None if params.get("sslcertmode", "") in ("", "disable", "allow", "require")
                        else f'invalid sslcertmode value: "{params["sslcertmode"]}"'):
            if problem:
                raise self.error("invalid-value", "connection_string", problem,
                                 self.vals["connection_string"].at)
        if "service" in params:
            # libpq's service files: this adapter reads none (vector inputs give no file
            # contents), so a service is found only where a file exists, which it does not
            # answer.
            home = self.env.get("HOME", "")
            user_file = home.rstrip("/") + "/.pg_service.conf" if home else None
            if user_file in self.files or "/etc/postgresql-common/pg_service.conf" in self.files:
                raise NotImplementedError("service files are not read by this adapter")
            raise self.error("invalid-value", "connection_string",
                             f'definition of service "{params["service"]}" not found',
                             self.vals["connection_string"].at)
        refused = _refused_keyword(params, self.env)
        if refused is not None:
            raise self.error("unsupported", "connection_string", refused[1],
                             self.vals["connection_string"].at)
        user_source, password_source = self._sources(params)
        if tls != "verify-full" and not all(_is_socket(h["host"]) and "hostaddr" not in h
                                            for h in hosts):
            self.warn("weak-tls", "connection_string" if provider == "connection-string"
                      else "sslmode", f"tls is {tls}: only verify-full stops a server "
                      "impersonating yours")
        public = {k: v for k, v in params.items() if k not in SECRET_KEYWORDS}
        plan = {
            "provider": provider, "hosts": hosts, "dbname": params.get("dbname"),
            "user": params.get("user"), "user_source": user_source,
            "password_source": password_source, "sslmode": sslmode, "sslrootcert": rootcert,
            "tls": tls, "tls_verify": tls_verify,
            "conninfo": conninfo.to_keyword_value(public), "uri": conninfo.to_uri(public),
            "region": self.region, "instance_connection_name": self.icn,
            "aws_endpoint": self.aws_endpoint,
            "target_session_attrs": params.get("target_session_attrs", "any"),
            "load_balance_hosts": params.get("load_balance_hosts", "disable"),
            "pool": {"min_size": self.get("min_size", 1), "max_size": self.get("max_size", 10),
                     "auto_migrate": self.get("auto_migrate", True), "lazy": self.get("lazy", False),
                     "max_lifetime": self.get("max_lifetime", 1800),
                     "token_refresh": self.get("token_refresh", "ahead")},
            "warnings": self.warnings, "ssl_bundle": self.ssl_bundle,
        }
        return Plan(plan, params, self)

    def _root(self):
        """The root certificate: (sslrootcert, present, written). Written is `sslrootcert` (or
        an `ssl_bundle` path); else libpq's default ~/.postgresql/root.crt when it exists."""
        written = self.vals.get("sslrootcert") or self.vals.get("ssl_bundle")
        if written is None:
            path = self._home_root()
            return (path, True, False) if path else (None, False, False)
        if written.v == "system":
            return ("system", True, True)
        present = written.v in self.files
        if not present:
            self.warn("root-cert-missing", written.key.value, "the root certificate file "
                      f"`{written.key.value}` names does not exist")
        return (written.v, present, True)

    def _home_root(self):
        home = self.env.get("HOME", "")
        path = home.rstrip("/") + "/.postgresql/root.crt" if home.startswith("/") else None
        return path if path in self.files else None

    def _sslmode(self, root, default_written, default_none):
        """The sslmode: written, else the preset's default (default_written with a written root
        certificate); sslrootcert=system refuses a weaker written mode, as libpq 16+ does."""
        mode = self.vals.get("sslmode")
        if root[0] == "system":
            if mode is not None and mode.v != "verify-full":
                raise self.conflict("sslmode", "sslrootcert", f'weak sslmode "{mode.v}" may not '
                                    'be used with sslrootcert=system (use "verify-full")')
            return "verify-full"
        if mode is not None:
            return mode.v
        return default_written if root[2] else default_none

    # -- presets --------------------------------------------------------------------------------

    def _port(self, variable):
        """The written port, else the provider's variable (checked as a written one), else 5432."""
        if "port" in self.vals or variable not in self.env:
            return self.get("port", 5432)
        value = _Value(self.env[variable], None, None, tainted=True)
        self._check("port", value, KEYS["port"])
        return value.v

    def _fallback(self, key, variable):
        """A written value, else the provider's environment variable (empty counts as unset)."""
        return self.get(key) if key in self.vals else self.env.get(variable) or None

    def _self_hosted(self):
        root = self._root()
        port = self.get("port", 5432)
        return ([{"host": self.get("host", "localhost"), "port": port}], port,
                self.get("database"), self._sslmode(root, "prefer", "prefer"), root)

    def _aws(self):
        host = self._fallback("host", "RDS_HOSTNAME")
        if host is None:
            raise self.missing("host", "provider aws needs `host` (or RDS_HOSTNAME)")
        port = self._port("RDS_PORT")
        self.aws_endpoint, host_region = _rds_host(host)
        self.region = self.get("region") or host_region or self.env.get("AWS_REGION") or None
        if self.iam:
            if self.region is None:
                raise self.missing("region", "IAM tokens are signed for a region: set `region` "
                                   "(or AWS_REGION)", "iam_auth")
            if self.user is None and self.cred_written is None:
                raise self.missing("user", "`iam_auth` needs a `user` (the database role the "
                                   "token is for)", "iam_auth")
        bundle = self.vals.get("ssl_bundle")
        if bundle is not None and bundle.v == "auto":
            root = self._auto_bundle()
        else:
            root = self._root()
        return ([{"host": host, "port": port}], port, self._fallback("database", "RDS_DB_NAME"),
                self._sslmode(root, "verify-full", "require"), root)

    def _auto_bundle(self):
        """`ssl_bundle: auto`: the cache file becomes the root certificate, taken as present
        (downloaded before connecting); the plan's ssl_bundle says where from."""
        url = self.vals.get("ssl_bundle_url")
        if url is not None:
            problem = _url_problem(url.v)
            if problem:
                raise self.error("invalid-value", "ssl_bundle_url", f"`ssl_bundle_url` {problem}",
                                 url.at)
        sha = self.vals.get("ssl_bundle_sha256")
        if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha.v):
            raise self.error("invalid-value", "ssl_bundle_sha256", "`ssl_bundle_sha256` is not "
                             "a SHA-256: expected 64 hex digits", sha.at)
        cache = self.env.get("XDG_CACHE_HOME", "")
        if not cache.startswith("/"):
            home = self.env.get("HOME", "")
            if not home.startswith("/"):
                raise self.missing("ssl_bundle", "`ssl_bundle: auto` needs a cache directory, "
                                   "but neither XDG_CACHE_HOME (an absolute path) nor HOME is set",
                                   "ssl_bundle")
            cache = home.rstrip("/") + "/.cache"
        path = cache.rstrip("/") + "/tea-pgcloud/rds-global-bundle.pem"
        self.ssl_bundle = {"url": url.v if url else RDS_BUNDLE_URL,
                           "sha256": sha.v.lower() if sha else None, "path": path}
        return (path, True, True)

    def _azure(self):
        host = self._fallback("host", "AZURE_POSTGRESQL_HOST")
        if host is None:
            raise self.missing("host", "provider azure needs `host` (or AZURE_POSTGRESQL_HOST)")
        port = self._port("AZURE_POSTGRESQL_PORT")
        if self.user is None and self.env.get("AZURE_POSTGRESQL_USER"):
            self.user, self.user_source = self.env["AZURE_POSTGRESQL_USER"], \
                "env:AZURE_POSTGRESQL_USER"
        if self.iam and self.user is None and self.cred_written is None:
            raise self.missing("user", "`iam_auth` needs a `user` (the Entra principal the token "
                               "is for) or AZURE_POSTGRESQL_USER", "iam_auth")
        mode = self.vals.get("sslmode")
        if mode is not None and mode.v in ("disable", "allow"):
            raise self.error("invalid-value", "sslmode", "Azure Database for PostgreSQL enforces "
                             "TLS: sslmode disable and allow are refused", mode.at)
        user = self.user or ""
        if "@" in user and "." not in user.rsplit("@", 1)[1]:
            self.warn("azure-single-server-user", "user", "`user` has Single Server's "
                      "user@server form; Flexible Server takes the plain user name")
        root = self._root()
        return ([{"host": host, "port": port}], port,
                self._fallback("database", "AZURE_POSTGRESQL_DATABASE"),
                self._sslmode(root, "verify-full", "require"), root)

    def _gcp(self):
        ip_type = self.get("ip_type", "public" if "host" in self.vals else "socket")
        name = self._gcp_connection_name(ip_type == "socket")
        if name:
            self.icn, self.region = name, name.rsplit(":", 2)[1]
        if self.iam and self.user is not None and self.user.endswith(".gserviceaccount.com"):
            self.user = self.user[: -len(".gserviceaccount.com")]
        if self.iam and self.user is None and self.cred_written is None:
            self.user_source = "iam:gcp"
        port = self.get("port", 5432)
        if ip_type != "socket" and "socket_dir" in self.vals:
            raise self.conflict("host", "socket_dir", "`socket_dir` is for the Auth Proxy socket; "
                                f"`ip_type: {ip_type}` connects to `host` directly")
        if ip_type == "socket":
            if "host" in self.vals:
                raise self.conflict("ip_type", "host", "`host` cannot go with `ip_type: socket`: "
                                    "the Auth Proxy socket is the host")
            socket_dir = self.vals.get("socket_dir")
            if socket_dir is not None and not socket_dir.v.startswith("/"):
                raise self.error("invalid-value", "socket_dir", "`socket_dir` must be an "
                                 "absolute path", socket_dir.at)
            directory = self.get("socket_dir", "/cloudsql").rstrip("/")
            mode = self.vals.get("sslmode")
            if mode is not None and mode.v != "disable":
                self.warn("socket-sslmode", "sslmode", "the Auth Proxy socket never uses TLS "
                          "(the proxy encrypts); this sslmode cannot apply there")
            root = self._root()
            return ([{"host": f"{directory}/{name}", "port": port}], port, self.get("database"),
                    self._sslmode(root, "disable", "disable"), root)
        if "host" not in self.vals:
            raise self.missing("host", f"`ip_type: {ip_type}` needs `host` (the instance's IP)")
        root = self._root()
        return ([{"host": self.get("host"), "port": port}], port, self.get("database"),
                self._sslmode(root, "verify-ca", "require"), root)

    def _gcp_connection_name(self, needed):
        """PROJECT:REGION:INSTANCE from `connection_name`, from project, region and instance, or
        (needed: the socket) from CLOUDSQL_CONNECTION_NAME; None for a direct IP without one."""
        written = self.vals.get("connection_name")
        parts = [k for k in ("project", "region", "instance") if k in self.vals]
        if parts:
            for key in ("project", "region", "instance"):
                if key not in self.vals:
                    raise self.missing(key, f"`{', '.join(parts)}` without `{key}`: a Cloud SQL "
                                       "instance is named by project, region and instance")
            return ":".join(self.get(k) for k in ("project", "region", "instance"))
        if written is None and needed:
            if "CLOUDSQL_CONNECTION_NAME" not in self.env:
                raise self.missing("connection_name", "provider gcp over the Auth Proxy socket "
                                   "needs `connection_name` (or project, region and instance, or "
                                   "CLOUDSQL_CONNECTION_NAME)")
            written = _Value(self.env["CLOUDSQL_CONNECTION_NAME"], None, tainted=True)
        if written is None:
            return None
        if not re.fullmatch(r"(?:[^:/\s]+:)?[^:/\s]+:[^:/\s]+:[^:/\s]+", written.v):
            where = "CLOUDSQL_CONNECTION_NAME" if written.key is None else "`connection_name`"
            raise self.error("invalid-value", "connection_name", f"{where}: {_describe(written)} "
                             "is not PROJECT:REGION:INSTANCE", written.at)
        return written.v

    def missing(self, path, message, at_key="provider"):
        """A missing value, located at the key that asks for it."""
        where = self.cred_written if at_key == "credentials" else self.vals.get(at_key)
        return self.error("missing", path, message, where.key_at if where else None)

    # -- connection strings ---------------------------------------------------------------------

    def _connection_string(self):
        value = self.vals["connection_string"]

        def fail(kind, message, redact=True):
            if value.tainted and redact:
                message = re.sub(r'"[^"]*"', "<a value from the environment>", message)
            return self.error(kind, "connection_string", message, value.at)

        try:
            params = conninfo.parse(value.v)
        except conninfo.ConnInfoError as e:
            raise fail("conninfo", e.message)
        for key, allowed in STRING_CHOICES.items():
            if key in params and params[key] not in allowed:
                raise fail("invalid-value", f'invalid {key} value: "{params[key]}"')
        if "password" in params and self.cred_written is not None:
            raise self.conflict("connection_string", "credentials", "`credentials` cannot go "
                                "with a `connection_string` that holds a password")
        hosts, default_socket = _string_hosts(params, fail)
        if default_socket:
            self.warn("default-socket-dir", "connection_string", "the connection string names "
                      f"no host: libpq's compiled-in socket directory is used ({DEFAULT_SOCKET})")
        root_written = params.get("sslrootcert") or None
        sslmode = params.get("sslmode", "verify-full" if root_written == "system" else "prefer")
        if root_written == "system" and sslmode != "verify-full":
            raise fail("conflict", f'weak sslmode "{sslmode}" may not be used with '
                       'sslrootcert=system (use "verify-full")', redact=False)
        if params.get("channel_binding", "prefer") not in ("disable", "prefer", "require"):
            raise fail("invalid-value", "invalid channel_binding value: "
                       f'"{params["channel_binding"]}"')
        for keyword, values in (("target_session_attrs", TARGET_SESSION_ATTRS),
                                ("load_balance_hosts", ("disable", "random"))):
            if keyword in params and params[keyword] not in values:
                raise fail("invalid-value", f'invalid {keyword} value: "{params[keyword]}"')
        if params.get("sslnegotiation") == "direct" and sslmode in ("disable", "allow", "prefer"):
            raise fail("conflict", f'weak sslmode "{sslmode}" may not be used with '
                       'sslnegotiation=direct (use "require", "verify-ca", or "verify-full")',
                       redact=False)
        if root_written is None:
            path = self._home_root()
            root = (path, path is not None, False)
        elif root_written == "system":
            root = ("system", True, True)
        else:
            root = (root_written, root_written in self.files, True)
            if not root[1]:
                self.warn("root-cert-missing", "connection_string", "the connection string's "
                          "sslrootcert does not exist")
        if "user" in params:
            self.user, self.user_source = params["user"], "literal"
        return params, hosts, sslmode, root

    # -- credentials ----------------------------------------------------------------------------

    def _sources(self, params):
        """user_source and password_source; params gets the user a source knows offline."""
        cred = self.cred_sources() if self.cred_written is not None else None
        if self.user is not None:
            params["user"] = self.user
            user_source = self.user_source
        else:
            user_source = self.user_source or (cred[0] if cred else "none")
        if self.iam:
            password_source = "iam:" + {"aws": "aws-rds"}.get(self.provider, self.provider)
        elif "password" in params:
            password_source = "literal"
        else:
            password_source = cred[1] if cred else "none"
        if self.source == "env" and cred:
            for source, names in ((user_source, self.lookup("username_key", "USER")),
                                  (password_source, self.lookup("password_key", "PASSWORD"))):
                if source == "env:" + names[0] and not any(self.env.get(n) for n in names):
                    self.warn("credentials-env-unset", "credentials",
                              f"none of {', '.join(names)} is set")
        return user_source, password_source

    def lookup(self, key, suffix):
        """The environment variables tried for a credential, in order (README: Credentials
        lookup order)."""
        prefix = self.cget("prefix", "")
        names = [prefix + self.cget(key, key.split("_")[0])]
        if prefix:
            names.append(prefix + suffix)
        names.append("POSTGRES_" + suffix)
        return list(dict.fromkeys(names))

    def cred_sources(self):
        source = self.source
        if source == "env":
            def first(names):
                return "env:" + next((n for n in names if self.env.get(n)), names[0])
            return first(self.lookup("username_key", "USER")), \
                first(self.lookup("password_key", "PASSWORD"))
        keys = [self.cget("username_key", "username"), self.cget("password_key", "password")]
        name, prefix = self.cred.get("secret_name"), self.cred.get("secret_prefix")
        if source == "aws":
            if name is None and prefix is None:
                raise self.missing("credentials", "credentials source aws needs `secret_name` "
                                   "(one JSON secret) or `secret_prefix` (one secret per key)",
                                   "credentials")
            return [f"secret:aws:{name.v}#{k}" if name else f"secret:aws:{prefix.v}{k}"
                    for k in keys]
        if source == "gcp":
            for key_name in ((None,) if name else ("username_key", "password_key")):
                self._secret_id(255, name or prefix, key_name)
            project = self.cget("project_id") or self.get("project") or \
                (self.icn.rsplit(":", 2)[0] if self.icn else None) or \
                self.env.get("GOOGLE_CLOUD_PROJECT") or None
            if project is None:
                raise self.missing("credentials.project_id", "credentials source gcp needs "
                                   "`project_id` (or the catalog's project, or "
                                   "GOOGLE_CLOUD_PROJECT)", "credentials")
            version = self.cget("version", "latest")
            base = f"secret:gcp:projects/{project}/secrets/"
            return [f"{base}{name.v}/versions/{version}#{k}" if name else
                    f"{base}{prefix.v if prefix else ''}{k}/versions/{version}" for k in keys]
        vault = self.cred.get("vault_url")
        if vault is None:
            raise self.missing("credentials.vault_url", "credentials source azure needs "
                               "`vault_url` (https://NAME.vault.azure.net)", "credentials")
        if not re.fullmatch(r"https://[^/\s:@]+(:[0-9]+)?/?", vault.v):
            raise self.error("invalid-value", "credentials.vault_url", "`credentials.vault_url` "
                             "must be an https URL such as https://NAME.vault.azure.net", vault.at)
        for key_name in ("username_key", "password_key"):
            self._secret_id(127, prefix, key_name)
        return [f"secret:azure:{vault.v.rstrip('/')}/secrets/"
                f"{((prefix.v if prefix else '') + k).replace('_', '-')}" for k in keys]

    def _secret_id(self, limit, prefix, key_name):
        """Refuses a secret name the backend cannot hold (gcp: letters, digits, `-`, `_`;
        azure the same once `_` maps to `-`), blaming the part that made it so."""
        key = self.cred.get(key_name)
        text = (prefix.v if prefix else "") + (self.cget(key_name, key_name.split("_")[0])
                                               if key_name else "")
        for part in (prefix, key):
            if part is not None and not re.fullmatch(r"[A-Za-z0-9_-]*", part.v):
                break
        else:
            if 0 < len(text) <= limit:
                return
            part = prefix or key
        shown = "the secret id" if part.tainted else f"secret id `{_show(text)}`"
        raise self.error("invalid-value", "credentials." + part.key.value, f"{shown} is not "
                         "valid: secret names hold letters, digits, `-` and `_` (at most "
                         f"{limit})", part.at)


def _expansion_problem(text, env):
    """Why `${...}` expansion failed, naming the variable but never quoting text that is not a
    variable name (it may be part of a password)."""
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
        elif text.startswith("${", i):
            end = text.find("}", i)
            if end < 0:
                return "unterminated `${` reference (no closing `}`)"
            name, sep, _ = text[i + 2:end].partition(":-")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                return "invalid `${...}` reference: the text inside is not a variable name " \
                       "(letters, digits and `_`, optionally `:-default`)"
            if not sep and name not in env:
                return f"the variable `{name}` is not set and `${{{name}}}` has no default"
            i = end + 1
        else:
            i += 1
    return "invalid `${...}` reference"


def _rds_host(host):
    """(aws_endpoint, region) read from an *.rds.amazonaws.com(.cn) host, else (None, None)."""
    host = host.lower()
    m = re.fullmatch(r"(.+)\.rds\.amazonaws\.com(\.cn)?", host)
    labels = m.group(1).split(".") if m else []
    if len(labels) < 3 or not re.fullmatch(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+", labels[-1]):
        return None, None
    ident = labels[-2]
    if ident.startswith("proxy-"):
        kind = "proxy-endpoint" if len(labels) >= 4 and labels[-3] == "endpoint" else "proxy"
    elif ident.startswith("cluster-ro-"):
        kind = "cluster-ro"
    elif ident.startswith("cluster-custom-"):
        kind = "cluster-custom"
    elif ident.startswith("cluster-"):
        kind = "cluster"
    else:
        kind = "instance"
    return kind, labels[-1]


def _url_problem(url):
    m = re.fullmatch(r"(https?)://([^/?#]*)([/?#].*)?", url)
    if not m:
        return "is not an https URL"
    scheme, authority = m.group(1), m.group(2)
    if "@" in authority:
        return "must not hold a user name or password"
    host = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
    if not host:
        return "is not an https URL (no host)"
    if scheme == "http" and not (re.fullmatch(r"127(\.[0-9]{1,3}){3}", host)
                                 or host in ("[::1]", "localhost")):
        return "uses plain http to a host that is not a loopback address; use https"
    return None


def _is_socket(host):
    return host.startswith("/") or host.startswith("@")


def _string_hosts(params, fail):
    """The hosts libpq connects to for a parsed connection string: ([{host, port, hostaddr?}],
    whether an entry is libpq's default socket directory)."""
    names = params["host"].split(",") if params.get("host") else []
    addrs = params["hostaddr"].split(",") if params.get("hostaddr") else []
    if names and addrs and len(names) != len(addrs):
        raise fail("invalid-value", f"could not match {len(names)} host names to {len(addrs)} "
                   "hostaddr values")
    count = len(names or addrs) or 1
    ports = params["port"].split(",") if params.get("port") else [""]
    if len(ports) == 1:
        ports = ports * count
    elif len(ports) != count:
        raise fail("invalid-value", f"could not match {len(ports)} port numbers to {count} hosts")
    hosts, default = [], False
    for i in range(count):
        text = ports[i].strip()
        if text and not re.fullmatch(r"[0-9]+", text):
            raise fail("invalid-value", f'invalid integer value "{ports[i]}" for connection '
                       'option "port"')
        port = int(text) if text else 5432
        if not 1 <= port <= 65535:
            raise fail("invalid-value", f'invalid port number: "{ports[i]}"')
        addr = addrs[i] if addrs else ""
        name = names[i] if names else ""
        if not name and not addr:
            name, default = DEFAULT_SOCKET, True
        entry = {"host": name or addr, "port": port}
        if addr:
            entry["hostaddr"] = addr
        hosts.append(entry)
    return hosts, default


def _tls(sslmode, rootcert, present, hosts):
    """(tls, tls_verify): what libpq does with sslmode and a root certificate file."""
    if all(_is_socket(h["host"]) and "hostaddr" not in h for h in hosts):
        return "disable", "none"
    if rootcert == "system":
        return "verify-full", "full"
    tls = "verify-ca" if sslmode == "require" and present else sslmode
    verify = {"verify-full": "full", "verify-ca": "ca"}.get(tls)
    return tls, verify or ("ca" if present and tls != "disable" else "none")
