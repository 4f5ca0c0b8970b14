"""Reading the ECSV files scarlet_jax writes, without astropy (for the tests)."""

from __future__ import annotations

import csv


def read_ecsv(path):
    """``(rows, columns, meta)`` of an ECSV file written by scarlet_jax.tables (its header
    entries are JSON flow mappings, so no YAML parser or astropy is needed)."""
    import json

    columns, meta, body = [], {}, []
    for line in path.read_text().splitlines():
        if line.startswith("# - "):
            columns.append(json.loads(line[4:]))
        elif line.startswith("# meta: "):
            meta = json.loads(line[len("# meta: "):])
        elif not line.startswith("#"):
            body.append(line)
    reader = csv.reader(body, delimiter=" ", quotechar='"')
    names = next(reader)
    assert names == [c["name"] for c in columns]
    return [dict(zip(names, row, strict=True)) for row in reader], columns, meta
