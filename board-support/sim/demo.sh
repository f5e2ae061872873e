#!/usr/bin/env bash
# The demo behind `make demo`: berthd runs in the background on the sim
# board (board-support/sim/board.hcl: two userspace virtual CAN buses) with
# its state under build/demo, the demo images are imported, and the demo
# playbook (testdata/demo/demo.hcl) comes up: containers built from stacked
# images, talking over a stack network, and two that share the CAN bus can0
# with different grants. A recorded trace is replayed onto the bus, each CAN
# container sees only its granted IDs, and a send outside a grant is refused.
# Then berthd is killed with -9 and started again, to show that the
# containers keep running and are re-adopted. `make demo-down` (this script
# with "down") stops it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
if [ "$(id -u)" != 0 ]; then
  echo "berth runs containers, mounts and networks: the demo needs root; re-running with sudo"
  exec sudo --preserve-env=PATH "$0" "$@"
fi
demo=$root/build/demo
sock=$demo/run/berthd.sock
berth() { "$root/bin/berth" --host "$sock" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

start_berthd() {
  mkdir -p "$demo"
  "$root/bin/berthd" --state-dir "$demo/state" --run-dir "$demo/run" --cgroup-parent berth-demo \
    --board "$root/board-support/sim/board.hcl" --plugin-dir "$root/bin" \
    >>"$demo/berthd.log" 2>&1 &
  echo $! >"$demo/berthd.pid"
  disown
  for _ in $(seq 100); do
    berth ps -a >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "berthd did not start; its log:"; tail -20 "$demo/berthd.log"; exit 1
}

stop_berthd() {
  [ -f "$demo/berthd.pid" ] || return 0
  kill "$(cat "$demo/berthd.pid")" 2>/dev/null || true
  rm -f "$demo/berthd.pid"
}

if [ "${1:-}" = down ]; then
  if ! berth ps -a >/dev/null 2>&1; then start_berthd; fi
  berth down demo || true
  stop_berthd
  echo "demo is down (state kept in $demo; remove it with: sudo rm -rf build/demo)"
  exit 0
fi

if berth ps -a >/dev/null 2>&1; then
  step "a demo berthd is already running; bringing its stack down first"
  berth down demo >/dev/null 2>&1 || true
else
  step "starting berthd (log: build/demo/berthd.log)"
  start_berthd
  grep -E 'runtime' "$demo/berthd.log" | tail -2 | sed 's/^/  /'
fi

step "importing the demo images (built from source by make images)"
for img in busybox base-config kvdb sensor dashboard cantool; do
  berth image import "build/images/$img.tar"
done
berth images

step "berth validate / plan / up testdata/demo/demo.hcl"
berth validate testdata/demo/demo.hcl
berth plan testdata/demo/demo.hcl
berth up testdata/demo/demo.hcl

step "berth ps"
sleep 3
berth ps

step "berth logs --tail 4 dashboard (it reads what sensor wrote into kvdb over the stack network)"
berth logs --tail 4 dashboard

step "berth devices: the sim board's buses, and the containers' sessions on can0"
berth devices

step "berth can replay can0 testdata/can/demo.log: a recorded trace drives the bus"
berth can replay can0 testdata/can/demo.log
sleep 0.5
step "speedo holds receive = [\"0x100-0x1FF\"]: it sees powertrain frames only"
berth logs --tail 4 speedo
step "body holds receive = [\"0x200-0x2FF\"], send = [\"0x2A0\"]: body frames only, and its own door status from its other session"
berth logs --tail 4 body

step "body tries to send 0x7DF, which its grant does not allow: refused"
berth exec body cantool send body 7DF#0201 || true

step "berth can dump can0 --count 6 --dbc testdata/can/demo.dbc: the bus, decoded"
berth can dump can0 --count 6 --dbc testdata/can/demo.dbc &
dump=$!
berth can replay can0 testdata/can/demo.log >/dev/null
wait "$dump" || true

step "berth devices: each container grant's counters, the refused send's session included though it closed"
berth devices

step "kill -9 berthd: the containers keep running"
kill -9 "$(cat "$demo/berthd.pid")"
sleep 0.5
echo "  berth-monitor processes still holding the demo's containers: $(pgrep -fc "berth-monitor run $demo" || true)"
start_berthd
step "berthd restarted; berth ps shows the same containers, re-adopted"
sleep 1
berth ps

cat <<MSG

The demo stack is running. Try:
  sudo bin/berth --host $sock ps
  sudo bin/berth --host $sock logs -f sensor
  sudo bin/berth --host $sock can dump can0
  sudo bin/berth --host $sock can send can0 123#DEADBEEF
  sudo bin/berth --host $sock devices
  sudo bin/berth --host $sock exec kvdb -- cat /etc/hosts
  sudo bin/berth --host $sock pause sensor; sudo bin/berth --host $sock resume sensor
Stop it with: make demo-down
MSG
