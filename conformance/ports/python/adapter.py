#!/usr/bin/env python3
"""The Python reference adapter of the TEA catalog vector kit (fixtures/vectors/SPEC.md, section 2).

One JSON request per line on stdin, one JSON reply per line on stdout, until stdin closes.
"""
import importlib
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# kind -> module whose handle(input, env, files) returns the result object (without `id`)
MODULES = {
    "conninfo": "conninfo",
    "expand": "expand",
    "content-hash": "content_hash",
    "rds-token": "rds_token",
    "plan": "plan",
    "error": "plan",
    "credentials": "credentials",
    "connection-string": "connection_string",
}


def answer(request: dict) -> dict:
    kind = request.get("kind")
    module_name = MODULES.get(kind)
    if module_name is None:
        return {"unsupported": True, "reason": f"kind {kind!r} is not implemented by this port"}
    try:
        module = importlib.import_module(module_name)
        return module.handle(request.get("input"), dict(request.get("env") or {}),
                             list(request.get("files") or []))
    except (ImportError, NotImplementedError) as e:
        return {"unsupported": True, "reason": f"{kind}: {type(e).__name__}: {e}"}
    except Exception as e:  # a bug in a handler fails its case, not the run
        traceback.print_exc(file=sys.stderr)
        return {"error": {"class": "adapter", "kind": "exception",
                          "message": f"{type(e).__name__}: {e}"}}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        reply = {"id": request.get("id")}
        reply.update(answer(request))
        reply["id"] = request.get("id")
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.stdin.reconfigure(encoding="utf-8")
    main()
