#!/usr/bin/env bash
# Where each reproduction row stands: its stages (done, running or stopped, with the last
# validation epoch) and, for a row started by a recipe that records it, whether the row is
# finished, running or stopped, with the command that resumes a stopped one.
#   examples/reproduce/status.sh
source "$(dirname "$0")/common.sh"
no_arguments "$@"
[ -d "$RUNS" ] || { echo "no runs yet: $RUNS does not exist"; exit 0; }
for run in "$RUNS"/*/; do
  row=$(basename "$run")
  stages=""
  for cmd in "$run"*.cmd; do
    [ -e "$cmd" ] || continue
    stage=$(basename "$cmd" .cmd)
    if [ -f "$run$stage.done" ]; then state=done
    elif row_running "$run"; then state=running
    else state=stopped; fi
    last=$( (grep -o '"epoch": [0-9]*, "valid_' "$run$stage.log" 2>/dev/null || true) | tail -1 | grep -o '[0-9]*' || true)
    stages="$stages $stage=$state${last:+ (last valid epoch $last)}"
  done
  echo "$row:$stages"
  if [ -f "${run}recipe.done" ]; then echo "  finished"
  elif row_running "$run"; then echo "  running"
  elif [ -f "${run}recipe_command.txt" ]; then echo "  stopped; resume: $(cat "${run}recipe_command.txt")"
  fi
done
