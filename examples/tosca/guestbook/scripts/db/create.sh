#!/bin/sh
set -e
mkdir -p "/var/lib/filedb/$DB_NAME"
echo "database $DB_NAME created"
