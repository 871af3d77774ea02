"""Build the feature job's Java topology (``stream_jobs/java``) into a jar.

The jar's name carries a hash of the sources, so an edited source is rebuilt and
an unchanged one is reused (by every job and test). Needs a JDK (``javac``):
``scripts/system-deps.sh`` installs openjdk-17-jdk-headless. Compiled against
PyFlink's own Flink jars and the Kafka connector jars beside the output (``make
setup`` puts them there), so the classes match the runtime exactly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "java"


def source_files() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def resource_files() -> list[Path]:
    """Non-Java files to ship in the jar (e.g. META-INF/services registrations)."""
    return sorted(p for p in SOURCES.rglob("*") if p.is_file() and p.suffix != ".java")


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in source_files() + resource_files():
        digest.update(path.relative_to(SOURCES).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def find_javac(java_home: Path | None = None) -> str:
    candidates = [java_home / "bin" / "javac"] if java_home else []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "javac")
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("javac")
    if found is None:
        raise SystemExit("javac not found: the feature job's functions need a JDK 17 "
                         "(scripts/system-deps.sh installs openjdk-17-jdk-headless)")
    return found


def flink_classpath(connector_dir: Path) -> str:
    """PyFlink's own jars plus the connector jars (Kafka) in ``connector_dir``."""
    import pyflink

    lib = Path(pyflink.__file__).resolve().parent / "lib"
    jars = sorted(lib.glob("*.jar")) + sorted(connector_dir.glob("flink-connector-*.jar")) + sorted(
        connector_dir.glob("kafka-clients*.jar"))
    return os.pathsep.join(str(p) for p in jars)


def ensure_udf_jar(out_dir: Path, java_home: Path | None = None) -> Path:
    """The jar for the current sources under ``out_dir``, compiled if missing (against the
    connector jars in ``out_dir``)."""
    jar = out_dir / f"recsys-flink-job-{sources_digest()}.jar"
    if jar.exists():
        return jar
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="recsys-udf-") as tmp:
        classes = Path(tmp) / "classes"
        command = [find_javac(java_home), "--release", "17", "-nowarn", "-d", str(classes),
                   "-cp", flink_classpath(out_dir), *map(str, source_files())]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"javac failed:\n{done.stdout}{done.stderr}")
        staging = Path(tmp) / jar.name
        with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(classes.rglob("*.class")):
                zf.write(path, path.relative_to(classes).as_posix())
            for path in resource_files():
                zf.write(path, path.relative_to(SOURCES).as_posix())
        shutil.move(staging, out_dir / f".{jar.name}.tmp")
        os.replace(out_dir / f".{jar.name}.tmp", jar)  # concurrent builders: last one wins
    return jar
