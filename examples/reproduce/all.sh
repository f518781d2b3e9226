#!/usr/bin/env bash
# Every reproduction row and figure of the two papers in one command: the rows of
# examples/reproduce/rows.txt (what each runs, what it needs first, roughly how long it takes),
# LANES at a time, each in the order of that file once the rows it needs are done.
#
#   nohup examples/reproduce/all.sh >> ../runs/all.out 2>&1 &    # everything, resumable
#   examples/reproduce/all.sh --list                             # each row: state, needs, hours
#   examples/reproduce/all.sh awd_ptb_uniform awd_ptb_none       # these rows only
#
# Resumable like every recipe: a done row (RUNS/ROW/recipe.done) is skipped, a stopped one
# continues from its checkpoints, so after an interruption the same command picks up where it
# was. A row already running in another process (started by hand, or by another all.sh) counts
# against LANES and is not started twice. Each row's output is appended to RUNS/ROW.out; after
# each finished row README.md's reproduction table is rewritten (results.py --table). A failed
# row is reported and skipped, the others go on; the command ends with status 1 if any selected
# row is not done. A row held before one of its stages (RUNS/ROW/hold_before, common.sh) stops
# there and gives its lane to the next row; it and the rows that need it wait until that file
# is removed and the command is run again.
#
# After a machine change that lost RUNS, a row whose run finished and whose result is committed
# (RESULTS/ROW.json with status "finished", or a figure row's JSON unless it says "complete":
# false, and no RUNS/ROW directory) is not trained again: it counts as done ("done in
# RESULTS/ROW.json"), unless a row still to run needs it, whose files (a checkpoint, a log) only
# a new run of it can give; then it runs like any other row. Start such a row by naming it
# (all.sh ROW), or by creating its directory (mkdir RUNS/ROW).
#
# Environment (besides common.sh's): LANES=2 (rows trained at once: one per core with THREADS=1),
# GPUS (for example GPUS=0,1: one lane per GPU, each row sees only its lane's GPU through
# CUDA_VISIBLE_DEVICES; LANES defaults to their number), ROWS_FILE=examples/reproduce/rows.txt,
# POLL=60 (seconds between looks while waiting for a lane or a needed row), README_TABLE=README.md
# (empty: leave the README alone).
source "$(dirname "$0")/common.sh"
ROWS_FILE=${ROWS_FILE:-$REPO/examples/reproduce/rows.txt}
GPUS=${GPUS:-}
IFS=, read -ra GPU_LIST <<< "$GPUS"
if [ ${#GPU_LIST[@]} -gt 0 ]; then LANES=${LANES:-${#GPU_LIST[@]}}; else LANES=${LANES:-2}; fi
POLL=${POLL:-60}
README_TABLE=${README_TABLE-$REPO/README.md}
QUEUE=$RUNS/.all
die() { echo "error: $*" >&2; exit 2; }
require_positive_int LANES
for gpu in "${GPU_LIST[@]}"; do [[ $gpu =~ ^[0-9]+$ ]] || die "GPUS must be comma-separated GPU indices, got '$GPUS'"; done
[ ${#GPU_LIST[@]} = 0 ] || [ "$LANES" -le ${#GPU_LIST[@]} ] || die "LANES=$LANES is more than the ${#GPU_LIST[@]} GPUs in GPUS=$GPUS"
[[ $POLL =~ ^[0-9]+([.][0-9]+)?$ ]] || die "POLL must be a number of seconds, got '$POLL'"
[ -f "$ROWS_FILE" ] || die "$ROWS_FILE not found: set ROWS_FILE to a rows file (see examples/reproduce/rows.txt)"
command -v flock >/dev/null || die "all.sh needs flock (util-linux) to share its queue between lanes"

declare -A NEEDS HOURS CMD
ORDER=()
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
  read -r name needs hours cmd <<< "$line"
  [ -n "$cmd" ] || die "$ROWS_FILE:$n: expected NAME NEEDS HOURS COMMAND, got '$line'"
  [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "$ROWS_FILE:$n: row name '$name' is not a plain directory name"
  [ -z "${CMD[$name]+x}" ] || die "$ROWS_FILE:$n: row $name is listed twice"
  [[ $hours =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$ROWS_FILE:$n: HOURS must be a number, got '$hours'"
  ORDER+=("$name") NEEDS[$name]=${needs//,/ } HOURS[$name]=$hours CMD[$name]=$cmd
  [ "$needs" != - ] || NEEDS[$name]=""
done < "$ROWS_FILE"
for row in "${ORDER[@]}"; do
  for need in ${NEEDS[$row]}; do
    [ -n "${CMD[${need%%:*}]+x}" ] || die "$ROWS_FILE: row $row needs '$need', which is not a row of that file"
  done
done

is_done() { [ -f "$RUNS/$1/recipe.done" ]; }
# committed ROW: its finished result is committed and its run directory is gone
committed() {
  [ ! -e "$RUNS/$1" ] && { [ "$(committed_status "$1")" = finished ] || committed_figure "$1"; }
}
# a need is a row (done when its recipe is) or ROW:STAGE (done when RUNS/ROW/STAGE.done exists)
need_done() { if [[ $1 == *:* ]]; then [ -f "$RUNS/${1%%:*}/${1#*:}.done" ]; else is_done "$1"; fi; }
running_elsewhere() { row_running "$RUNS/$1"; }  # e.g. started by hand
# a claim holds the lane's PID and start time: after a reboot the PID may belong to another process
started_at() { ps -o lstart= -p "$1" 2>/dev/null | tr -s ' ' || true; }
claimed() {
  local pid start
  [ -f "$QUEUE/claims/$1" ] && read -r pid start 2>/dev/null < "$QUEUE/claims/$1" || return 1
  [ -n "$start" ] && [ "$(started_at "$pid")" = "$start" ]
}
busy() { claimed "$1" || running_elsewhere "$1"; }
failed() { [ -f "$QUEUE/failed/$1" ]; }
# held ROW: its recipe stopped before the stage that RUNS/ROW/hold_before names (common.sh)
held_at() { held_stage "$RUNS/$1"; }
held() { [ -n "$(held_at "$1")" ]; }
# KEEP: the rows counted as done by their committed results (set_kept, below)
declare -A KEEP=()
kept() { [ -n "${KEEP[$1]+x}" ] && [ ! -e "$RUNS/$1" ]; }
state() {
  if is_done "$1"; then echo done
  elif kept "$1"; then echo "done in ${RESULTS#"$REPO"/}/$1.json"
  elif busy "$1"; then echo running
  elif held "$1"; then echo "held before $(held_at "$1")"
  elif failed "$1"; then echo "failed (status $(cat "$QUEUE/failed/$1"))"
  elif [ -f "$RUNS/$1/recipe_command.txt" ]; then echo stopped  # its recipe began (track_row)
  else echo "not started"; fi
}

# set_kept ROW...: KEEP = the committed rows among them (all rows for --list) that no row still
# to run needs, directly or through another committed row that must run again
set_kept() {
  local row need changed=1
  KEEP=()
  for row in "$@"; do ! is_done "$row" && committed "$row" && KEEP[$row]=1; done
  while [ $changed = 1 ]; do
    changed=0
    for row in "$@"; do
      if is_done "$row" || kept "$row"; then continue; fi
      for need in ${NEEDS[$row]}; do
        if kept "${need%%:*}"; then unset "KEEP[${need%%:*}]"; changed=1; fi
      done
    done
  done
}

if [ "${1:-}" = --list ]; then
  set_kept "${ORDER[@]}"
  [ $# -eq 1 ] || die "--list takes no rows"
  width=3 swidth=5  # the longest row name and state
  declare -A STATES=()
  for row in "${ORDER[@]}"; do
    STATES[$row]=$(state "$row")
    [ ${#row} -le $width ] || width=${#row}
    [ ${#STATES[$row]} -le $swidth ] || swidth=${#STATES[$row]}
  done
  printf '%-*s %-*s %-6s %s\n' "$width" ROW "$swidth" STATE HOURS NEEDS
  for row in "${ORDER[@]}"; do
    printf '%-*s %-*s %-6s %s\n' "$width" "$row" "$swidth" "${STATES[$row]}" "${HOURS[$row]}" "${NEEDS[$row]:--}"
  done
  exit 0
fi
SELECTED=()
for row in "$@"; do
  [ -n "${CMD[$row]+x}" ] || die "unknown row '$row' (the rows: ${ORDER[*]}; --list)"
  SELECTED+=("$row")
done
if [ ${#SELECTED[@]} -gt 0 ]; then NAMED=1; else NAMED=0 SELECTED=("${ORDER[@]}"); fi
selected() { [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
# a row named on the command line runs even when its result is committed
[ $NAMED = 1 ] || set_kept "${SELECTED[@]}"
for row in "${SELECTED[@]}"; do
  for need in ${NEEDS[$row]}; do
    need_done "$need" || selected "${need%%:*}" ||
      die "row $row needs $need, which is not done: name ${need%%:*} too"
  done
done

mkdir -p "$QUEUE/claims"
rm -rf "$QUEUE/failed"
locked() { ( flock 9; "$@" ) 9> "$QUEUE/lock"; }

# next_row LANE_PID (under the lock): the next row this lane may start, claimed for it; WAIT
# when one must wait (all lanes busy, or the remaining rows wait for rows in progress); nothing
# when no selected row is left to run
next_row() {
  local row need busy_rows=0 waiting=0 candidate=""
  for row in "${ORDER[@]}"; do
    if ! is_done "$row" && busy "$row"; then busy_rows=$((busy_rows + 1)); fi
  done
  for row in "${SELECTED[@]}"; do
    if is_done "$row" || kept "$row" || failed "$row" || held "$row"; then continue; fi
    if busy "$row"; then waiting=1; continue; fi
    local ready=1 blocked=0
    for need in ${NEEDS[$row]}; do
      need_done "$need" && continue
      ready=0
      if failed "${need%%:*}" || held "${need%%:*}"; then blocked=1; fi
    done
    if [ $ready = 1 ]; then candidate=$row; break; fi
    [ $blocked = 1 ] || waiting=1
  done
  if [ -n "$candidate" ] && [ $busy_rows -lt "$LANES" ]; then
    echo "$1 $(started_at "$1")" > "$QUEUE/claims/$candidate"
    echo "$candidate"
  elif [ -n "$candidate" ] || [ $waiting = 1 ]; then
    echo WAIT
  fi
}

after_row() {
  [ -n "$README_TABLE" ] || return 0
  (cd "$REPO" && python examples/reproduce/results.py --table --write "$README_TABLE") >> "$RUNS/$1.out" 2>&1 ||
    log "could not rewrite the reproduction table in $README_TABLE (see $RUNS/$1.out)"
}

lane() {
  local id=$1 me=$BASHPID row status
  [ ${#GPU_LIST[@]} = 0 ] || export CUDA_VISIBLE_DEVICES=${GPU_LIST[$((id - 1))]}
  while :; do
    row=$(locked next_row "$me")
    [ -n "$row" ] || return 0
    if [ "$row" = WAIT ]; then sleep "$POLL"; continue; fi
    log "lane $id${CUDA_VISIBLE_DEVICES:+ (GPU $CUDA_VISIBLE_DEVICES)}: $row: ${CMD[$row]} (output: $RUNS/$row.out)"
    status=0
    (cd "$REPO" && bash -c "${CMD[$row]}") >> "$RUNS/$row.out" 2>&1 < /dev/null || status=$?
    if [ $status = 0 ] && is_done "$row"; then
      log "lane $id: $row: done"
      locked after_row "$row"
    elif [ $status = 0 ] && held "$row"; then
      log "lane $id: $row: held before $(held_at "$row") ($RUNS/$row/hold_before: $(head -n 1 "$RUNS/$row/hold_before")); the lane moves on"
      locked after_row "$row"
    else
      if [ $status = 0 ]; then
        log "lane $id: $row: the command ended without writing $RUNS/$row/recipe.done"
        status=1
      fi
      mkdir -p "$QUEUE/failed"
      echo "$status" > "$QUEUE/failed/$row"
      log "lane $id: $row: failed with status $status (see $RUNS/$row.out)"
    fi
    rm -f "$QUEUE/claims/$row"
  done
}

# Ctrl-C or a kill of this command stops its rows too (background lanes would ignore Ctrl-C and
# keep training unseen); a stopped row continues when the same command is run again
tree() {  # PID and its descendants, parents first
  local child
  echo "$1"
  for child in $(pgrep -P "$1" || true); do tree "$child"; done
}
LANE_PIDS=()
stop_all() {
  trap - INT TERM
  log "all: stopped by a signal, and the rows it was running with it; run the same command again to continue"
  local pids=() pid
  for pid in "${LANE_PIDS[@]}"; do pids+=($(tree "$pid")); done
  # the lanes first, so that none starts another row when its current one ends
  kill -TERM "${pids[@]}" 2>/dev/null || true
  exit 130
}
trap stop_all INT TERM

log "all: ${#SELECTED[@]} rows (${SELECTED[*]}), $LANES at a time, rows from $ROWS_FILE"
for i in $(seq 1 "$LANES"); do
  lane "$i" &
  LANE_PIDS+=($!)
done
wait
left=0
for row in "${SELECTED[@]}"; do
  s=$(state "$row")
  if [ "$s" != done ] && ! kept "$row"; then
    left=$((left + 1))
    for need in ${NEEDS[$row]}; do need_done "$need" || s="$s, needs $need"; done
  fi
  log "all: $row: $s"
done
[ $left = 0 ]
