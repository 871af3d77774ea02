#!/usr/bin/env bash
# Extract Flink's Kafka connector jars (built for Flink 2.0) from the pinned
# PyPI wheel into $1/flink-jars. Only those two jars are taken: installing the
# wheel itself would overwrite PyFlink's own lib folder.
set -euo pipefail
venv=${1:-.venv-flink}
wheel_spec="shigawire-apache-flink-libraries==2.0.0.post1"
out="$venv/flink-jars"
if [ -f "$out/flink-connector-kafka.jar" ] && [ -f "$out/kafka-clients.jar" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download --disable-pip-version-check -q --no-deps "$wheel_spec" -d "$tmp"
mkdir -p "$out"
"$venv/bin/python" - "$tmp" "$out" <<'PY'
import sys, zipfile, pathlib
tmp, out = map(pathlib.Path, sys.argv[1:])
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as zf:
    for jar in ("flink-connector-kafka.jar", "kafka-clients.jar"):
        (out / jar).write_bytes(zf.read(f"pyflink/lib/{jar}"))
print(f"flink-jars: extracted Kafka connector jars from {wheel.name} into {out}")
PY
