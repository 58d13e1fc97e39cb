# Sourced by scripts that need a PostgreSQL server: `start_postgres` installs
# PostgreSQL from Debian when missing, starts a throwaway cluster on
# 127.0.0.1 at a free port (data in a temporary directory, removed by
# `stop_postgres`), and sets PG_URL (a postgres://…/postgres URL), PG_BIN
# (the server's bin directory) and PG_DIR.

pg_bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

# Runs a server command as an unprivileged user when we are root (initdb
# and postgres refuse to run as root).
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  PG_BIN=$(pg_bin_dir)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "== installing PostgreSQL (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(pg_bin_dir)
  fi
  PG_DIR=$(mktemp -d /tmp/auditgate-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
  # fsync off: a throwaway cluster for tests and load, never a real trail.
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -o \
    "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=500 ${PG_OPTIONS:--c fsync=off}" \
    start >/dev/null
  PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export PG_URL PG_BIN PG_DIR
}

stop_postgres() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
