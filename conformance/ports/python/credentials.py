"""Kind `credentials`: the story's resolve_catalog_credentials for `credentials.source: env`
(SPEC section 4; README, "Credentials lookup order")."""

import plan


def handle(input, env, files):
    if not isinstance(input, str):
        return plan.vector_error("the input must be the catalog's YAML text")
    try:
        catalog = plan.build(input, env, files).catalog
    except plan.ConfigError as e:
        return e.result()
    if catalog.source != "env":
        # Another backend needs a network: the protocol's unsupported (SPEC section 4).
        return {"unsupported": True,
                "reason": f"the {catalog.source} secrets backend needs a network"}
    found, tried = {}, []
    for field, key, suffix in (("user", "username_key", "USER"),
                               ("password", "password_key", "PASSWORD")):
        names = catalog.lookup(key, suffix)  # PREFIX+key, PREFIX+SUFFIX, POSTGRES_SUFFIX
        found[field] = next((env[n] for n in names if env.get(n)), None)
        if found[field] is None:
            tried.append(f"{field} ({', '.join(names)})")
    if tried:
        return _error("missing", f"no value set (or only empty ones) for {'; '.join(tried)}")
    return found


def _error(kind, message):
    return {"error": {"class": "credentials", "kind": kind, "message": message}}
