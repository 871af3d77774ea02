#!/usr/bin/env bash
# Install the system packages the platform needs, if missing (Debian/Ubuntu):
# redis-server (started when no Redis answers), Java 17 with javac (Flink), PostgreSQL
# client+server (optional backends, used by the tests), make, Prometheus with
# promtool and Alertmanager with amtool (alert rules and the rollback loop),
# Chromium (the web console's browser tests drive it with Playwright).
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ! java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then need+=(openjdk-17-jre-headless); fi
# javac: the Flink feature job compiles its Java functions (stream_jobs/java) on first use
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v make >/dev/null 2>&1 || need+=(make)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)  # Prometheus + promtool
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # console browser tests (Playwright)

if [ ${#need[@]} -gt 0 ]; then
  echo "system-deps: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "system-deps: redis-server, Java 17+, PostgreSQL, make, venv, Prometheus, Alertmanager, Chromium present"
fi
