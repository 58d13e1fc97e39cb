# Shared by the benchmark scripts (sourced): a scratch directory, processes
# stopped on exit, free loopback ports and waiting for a port to open.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU ticks (utime+stime, all threads) of the given processes.
ticks() { local total=0; for p in "$@"; do read -r -a f < "/proc/$p/stat"; total=$((total + f[13] + f[14])); done; echo "$total"; }
# Each thread of process $1: "tid utime stime name", times in clock ticks.
threads() {
  for t in "/proc/$1/task/"*; do
    echo "$(basename "$t") $(sed 's/.*) //' "$t/stat" | awk '{print $12, $13}') $(cat "$t/comm")"
  done
}
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
# The head of an nginx configuration whose files live in $work/NAME, up to
# and inside `http {`: nginx_prelude NAME WORKERS. nginx's workers drop to an
# unprivileged user: they must be able to reach and write their temp
# directories, or a buffered answer too big for memory fails (and the client
# is cut) instead of spilling to disk.
nginx_prelude() {
  mkdir -p "$work/$1"
  chmod 755 "$work"
  chmod 777 "$work/$1"
  cat <<NGINX
worker_processes $2;
daemon off;
pid $work/$1.pid;
error_log $work/$1/error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/$1/body;
  proxy_temp_path $work/$1/proxy;
  fastcgi_temp_path $work/$1/fastcgi;
  uwsgi_temp_path $work/$1/uwsgi;
  scgi_temp_path $work/$1/scgi;
NGINX
}
# Runs nginx on the configuration $work/NAME.conf, waits for PORT, adds its
# pid to pids and prints it: run_nginx NAME PORT.
run_nginx() {
  nginx -c "$work/$1.conf" -p "$work/$1" > /dev/null 2>&1 &
  pids+=($!)
  wait_port "$2"
  echo $!
}
# Starts nginx as a reverse proxy to the upstream: start_nginx LISTEN_PORT
# UPSTREAM_PORT WORKERS [CERT KEY] (with a pair: HTTPS only, TLS 1.2 and
# 1.3). Its pid is added to pids and printed.
start_nginx() {
  local listen="listen 127.0.0.1:$1;"
  if [ -n "${4:-}" ]; then
    listen="listen 127.0.0.1:$1 ssl; ssl_certificate $4; ssl_certificate_key $5; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;"
  fi
  { nginx_prelude nginx "$3"; cat <<NGINX
  upstream app { server 127.0.0.1:$2; keepalive 128; }
  server {
    $listen
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
  } > "$work/nginx.conf"
  run_nginx nginx "$1"
}
# Starts nginx answering every request itself with a small JSON object, one
# worker, as an upstream that costs little: start_json_nginx PORT.
start_json_nginx() {
  { nginx_prelude upnginx 1; cat <<NGINX
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$1;
    location / {
      default_type application/json;
      return 200 '{"id": 1, "name": "Alice Example", "email": "alice@example.com"}';
    }
  }
}
NGINX
  } > "$work/upnginx.conf"
  run_nginx upnginx "$1"
}
# One wrk run: measure NAME URL PIDS... appends to $work/results.tsv the
# line NAME, req/s, p50 ms, p99 ms, CPU µs per request of PIDS (none for
# "direct"), non-2xx answers. $CONNS connections for $DURATION seconds;
# $WRK_HEADER, when set, is sent with every request.
measure() {
  local name=$1 url=$2; shift 2
  local before after out
  before=$(ticks "$@")
  local header=()
  if [ -n "${WRK_HEADER:-}" ]; then header=(-H "$WRK_HEADER"); fi
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${header[@]}" "$url")
  after=$(ticks "$@")
  python3 - "$name" "$before" "$after" "$(getconf CLK_TCK)" "$out" <<'PY' >> "$work/results.tsv"
import re, sys
name, before, after, hz, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def ms(v, unit): return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups())
p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
cpu_us = (after - before) * 1e6 / hz / total if name != "direct" else float("nan")
print(f"{name}\t{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{cpu_us:.2f}\t{errors.group(1) if errors else 0}")
PY
}
