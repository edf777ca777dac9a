"""What the native-histogram tests compare: get_native() dicts."""

from typing import Any, Dict


def downscaled(native: Dict[str, Any], schema: int) -> Dict[str, Any]:
    """A get_native() dict at a lower `schema` (buckets merged as Prometheus does)."""
    shift = native["schema"] - schema
    out = {**native, "schema": schema, "positive": {}, "negative": {}}
    for sign in ("positive", "negative"):
        for k, count in native[sign].items():
            key = -((-k) >> shift)  # ceil(k / 2^shift)
            out[sign][key] = out[sign].get(key, 0) + count
    return out
