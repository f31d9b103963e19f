#!/bin/sh
# Stops the server start.sh started.
set -e
. ../common.sh
pid=$(cat "$(pid_file "$NAME")")
kill "$pid"
rm -f "$(pid_file "$NAME")"
echo "$NAME stopped (process $pid)"
