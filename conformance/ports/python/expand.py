"""`${VAR}` expansion (README, Configuration reference, "Expansion").

`${NAME}` and `${NAME:-default}` (the default also when NAME is set but empty; the default is
literal text up to the first `}`), `$$` for a literal `$`, any other `$` kept as written. Values
are inserted as they are, never expanded again. Messages name the variable but never quote a
value, nor the text of a reference that is not a valid one (it may be part of a password).
"""
import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ExpandError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def expand(text: str, env: dict) -> str:
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                raise ExpandError("unterminated `${` reference: no closing `}`")
            body = text[i + 2:end]
            name, sep, default = body.partition(":-")
            if not _NAME.match(name):
                raise ExpandError(
                    "invalid `${...}` reference: a variable name is letters, digits and `_`, "
                    "not starting with a digit (write `$$` for a literal `$`)")
            value = env.get(name)
            if sep:
                out.append(value if value else default)
            elif value is None:
                raise ExpandError(f"environment variable {name} is not set (`${{{name}}}` has no default)")
            else:
                out.append(value)
            i = end + 1
        else:
            out.append("$")
            i += 1
    return "".join(out)


def handle(input, env, files) -> dict:
    try:
        return {"value": expand(input, env)}
    except ExpandError as e:
        return {"error": {"class": "config", "kind": "expansion", "message": e.message}}
