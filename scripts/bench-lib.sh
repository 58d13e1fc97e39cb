# Shared by the benchmark scripts (sourced): a scratch directory, processes
# stopped on exit, free loopback ports and waiting for a port to open.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU ticks (utime+stime, all threads) of the given processes.
ticks() { local total=0; for p in "$@"; do read -r -a f < "/proc/$p/stat"; total=$((total + f[13] + f[14])); done; echo "$total"; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
# Starts nginx as a reverse proxy to the upstream: start_nginx LISTEN_PORT
# UPSTREAM_PORT WORKERS. Its pid is added to pids and printed.
start_nginx() {
  # nginx's workers drop to an unprivileged user: they must be able to reach
  # and write their temp directories, or a buffered answer too big for
  # memory fails (and the client is cut) instead of spilling to disk.
  mkdir -p "$work/nginx"
  chmod 755 "$work"
  chmod 777 "$work/nginx"
  cat > "$work/nginx.conf" <<NGINX
worker_processes $3;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx/error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream app { server 127.0.0.1:$2; keepalive 128; }
  server {
    listen 127.0.0.1:$1;
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
  nginx -c "$work/nginx.conf" -p "$work/nginx" > /dev/null 2>&1 &
  pids+=($!)
  wait_port "$1"
  echo $!
}
