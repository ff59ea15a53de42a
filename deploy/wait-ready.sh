#!/bin/bash
# Readiness check for the nats-edge unit (ExecStartPost): returns once the broker accepts
# connections on its client port, fails after TIMEOUT seconds.
#
#   wait-ready.sh PORTS_DIR [TIMEOUT_SECONDS]
#
# The broker runs with --ports_file_dir PORTS_DIR and writes nats-edge_<pid>.ports there only
# after all its listeners are bound; the file names the client URL, e.g.
# {"nats":["nats://0.0.0.0:4222"],...}. The port comes from that file, so the check follows
# whatever `listen`/`port` the config says. The TCP connect uses bash's /dev/tcp: no curl or
# nc needed on the device. systemd empties PORTS_DIR (RuntimeDirectory=) at every start, so a
# file from an earlier run cannot answer for this one.
set -euo pipefail

dir=${1:?usage: wait-ready.sh PORTS_DIR [TIMEOUT_SECONDS]}
timeout=${2:-85}
[[ $timeout =~ ^[0-9]+$ ]] || { echo "wait-ready.sh: TIMEOUT_SECONDS must be a whole number: $timeout" >&2; exit 2; }

# Milliseconds since the epoch, without forking date (EPOCHREALTIME: bash 5, Debian 11 and up).
now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  echo $((t / 1000))
}
deadline=$(($(now_ms) + timeout * 1000))

# Prints HOST PORT from a ports file once it holds a complete client URL.
client_address() {
  local text url host port
  text=$(<"$1") || return 1
  [[ $text == *'"nats":["nats://'*'"]'* ]] || return 1
  url=${text#*'"nats":["nats://'}
  url=${url%%'"'*}
  port=${url##*:}
  host=${url%:*}
  [[ $port =~ ^[0-9]+$ ]] || return 1
  # A wildcard listener is reached over loopback.
  case $host in
    '' | 0.0.0.0 | :: | '[::]') host=127.0.0.1 ;;
    '['*']') host=${host#[} && host=${host%]} ;;
  esac
  printf '%s %s\n' "$host" "$port"
}

accepts() {
  # The subshell closes the socket again as it exits.
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

shopt -s nullglob
last=''
while :; do
  for f in "$dir"/nats-edge_*.ports; do
    if addr=$(client_address "$f"); then
      read -r host port <<<"$addr"
      last="$host:$port"
      if accepts "$host" "$port"; then
        echo "nats-edge is accepting connections on $last"
        exit 0
      fi
    fi
  done
  if (($(now_ms) >= deadline)); then
    if [[ -n $last ]]; then
      echo "nats-edge: not accepting connections on $last after ${timeout}s" >&2
    else
      echo "nats-edge: no ports file in $dir after ${timeout}s (is the broker starting with --ports_file_dir $dir?)" >&2
    fi
    exit 1
  fi
  sleep 0.1
done
