#!/bin/sh
# DBMS create: a file database, served over HTTP once started.
set -e
mkdir -p /var/lib/filedb
echo "file database ready"
