# Source me: installs (if needed) and starts a throwaway Redis server on a loopback port
# in a temp dir, without persistence, and exports REDIS_URL. The server stops when the
# calling shell exits (after whatever EXIT trap was set before, e.g. .ci/postgres.sh's).
redis_bin=$(command -v redis-server || true)
if [ -z "$redis_bin" ]; then
  echo "ci: installing redis-server (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  redis_bin=$(command -v redis-server)
fi
REDIS_PORT=${REDIS_PORT:-63791}
REDIS_DIR=$(mktemp -d /tmp/crm-redis.XXXXXX)
# No RDB snapshots, no append-only file: nothing outlives the run.
"$redis_bin" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --save '' --appendonly no \
  --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/log" >/dev/null
for _ in $(seq 50); do
  [ -s "$REDIS_DIR/redis.pid" ] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "ci: redis-server did not start on port $REDIS_PORT" >&2
  cat "$REDIS_DIR/log" >&2
  return 1 2>/dev/null || exit 1
fi
# Chain onto an earlier EXIT trap instead of replacing it (PostgreSQL's stop stays).
# SHUTDOWN returns once the server has exited, so the folder is empty of writers when removed.
_redis_stop="redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || kill \$(cat '$REDIS_DIR/redis.pid' 2>/dev/null) 2>/dev/null; sleep 0.2; rm -rf '$REDIS_DIR'"
_prev_trap=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//" -e "s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "$_redis_stop${_prev_trap:+; $_prev_trap}" EXIT
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "ci: Redis $("$redis_bin" --version | awk '{print $3}' | cut -d= -f2) on port $REDIS_PORT"
