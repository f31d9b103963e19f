#!/bin/sh
# ConnectsTo pre_configure_source: the database's address, checked, written where configure
# reads it, and reported.
set -e
url="http://$DB_HOST:$DB_PORT/$DB_NAME"
wget -q -O /dev/null "$url/entries.txt"
mkdir -p "$(dirname "$CONF")"
echo "$url" > "$CONF"
echo "DB_URL=$url" >> "$LAPIS_OPERATION_OUTPUTS"
echo "database reachable at $url"
