# Shared by the benchmark scripts (sourced): a scratch directory cleaned up on exit, free
# ports, nginx on 127.0.0.1 with the server blocks given on standard input, medians.
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; nginx -p "$tmp" -c nginx.conf -s stop 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A reply TikTok would give, for nginx to return: json_reply CODE MESSAGE
json_reply() {
    echo "location / { default_type application/json; return 200 '{\"code\":$1,\"message\":\"$2\",\"request_id\":\"bench\",\"data\":{}}'; }"
}
start_nginx() {  # server blocks on stdin
    mkdir -p "$tmp/logs"
    { cat <<NGINX
worker_processes ${NGINX_WORKERS:-1};
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp;
  client_max_body_size 16m;
NGINX
      cat; echo "}"; } > "$tmp/nginx.conf"
    nginx -p "$tmp" -c nginx.conf
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
