# Source me: installs (if needed) and starts a throwaway PostgreSQL server on a local
# port, and exports TEST_DATABASE_URL. The server stops when the calling shell exits.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ]; then
  echo "ci: installing PostgreSQL (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
PG_PORT=${PG_PORT:-54329}
PG_DIR=$(mktemp -d /tmp/crm-pg.XXXXXX)
chown postgres "$PG_DIR"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$pg_bin/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$PG_DIR/data" -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" \
  -l "$PG_DIR/log" -w start >/dev/null
trap 'as_pg "$pg_bin/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1; rm -rf "$PG_DIR"' EXIT
as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres crm_test
export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/crm_test"
echo "ci: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on port $PG_PORT"
