"""Kind `connection-string`: the story's build_provider_connection_string, the plan's libpq
keywords as a postgresql:// URI with the password (SPEC sections 4 and 5)."""

import conninfo
import plan


def handle(input, env, files):
    if not isinstance(input, dict) or not isinstance(input.get("config"), str) \
            or not isinstance(input.get("credentials") or {}, dict):
        return plan.vector_error("the input must be {config: YAML text, credentials: "
                                 "{username, password}}")
    try:
        params = dict(plan.build(input["config"], env, files).params)
    except plan.ConfigError as e:
        return e.result()
    credentials = input.get("credentials") or {}
    if not params.get("user") and credentials.get("username"):
        params["user"] = credentials["username"]  # a user written in the YAML wins
    if not params.get("password") and credentials.get("password"):
        params["password"] = credentials["password"]
    return {"connection_string": conninfo.to_uri(params)}
