#!/bin/sh
# Starts busybox httpd in the background (its output to a log, so this operation can end).
# Run again (an orchestrator that restarted meanwhile), it finds the server running.
set -e
. ../common.sh
pid=$(cat "$(pid_file "$NAME")" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  echo "$NAME already serving (process $pid)"
  exit 0
fi
mkdir -p "$DOC_ROOT" /var/log
httpd -f -p "$PORT" -h "$DOC_ROOT" > "/var/log/$NAME.log" 2>&1 < /dev/null &
echo $! > "$(pid_file "$NAME")"
sleep 1
kill -0 "$(cat "$(pid_file "$NAME")")"
echo "$NAME serving $DOC_ROOT on port $PORT"
