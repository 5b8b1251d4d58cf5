"""The catalog's ids, as TEA's Python catalog computes them.

`dumps` is json.dumps(value, sort_keys=True) of the value the JSON text holds; parsing the text
with Python's json module and dumping it again keeps Python's own number forms (an int stays an
int of any size, a float keeps `.0` / `1e+16`), which is what the catalog hashes.
"""
import hashlib
import json


def _not_json(name):
    raise ValueError(f"{name} is not JSON")


def handle(input, env, files) -> dict:
    if "key" in input:
        return {"entry_id": hashlib.sha256(input["key"].encode("utf-8")).hexdigest()}
    try:
        value = json.loads(input["json"], parse_constant=_not_json)
    except (ValueError, RecursionError) as e:
        return {"error": {"class": "input", "kind": "json", "message": f"not JSON: {e}"}}
    dumps = json.dumps(value, sort_keys=True)
    return {"dumps": dumps, "content_hash": "sha256:" + hashlib.sha256(dumps.encode("utf-8")).hexdigest()}
