#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 with trust auth for local
# connections (the tests create and drop their own databases). Redis needs no
# help: the stack starts redis-server itself when nothing answers.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if pg_up; then
  echo "ensure-services: PostgreSQL answers on 127.0.0.1:5432"
  exit 0
fi
version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
if [ -z "$version" ]; then
  echo "ensure-services: PostgreSQL is not installed (run scripts/system-deps.sh)" >&2
  exit 1
fi
hba="/etc/postgresql/$version/main/pg_hba.conf"
if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 30); do pg_up && break; sleep 1; done
pg_up || { echo "ensure-services: PostgreSQL did not start" >&2; exit 1; }
echo "ensure-services: started PostgreSQL $version"
