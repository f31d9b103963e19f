#!/bin/sh
set -e
echo "$FIRST_ENTRY" > "/var/lib/filedb/$DB_NAME/entries.txt"
echo "database $DB_NAME has its first entry"
