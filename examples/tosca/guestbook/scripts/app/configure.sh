#!/bin/sh
# WebApplication configure: the page, with the entries read from the database.
set -e
mkdir -p "$DOC_ROOT/$CONTEXT_ROOT"
entries=$(wget -q -O - "$(cat "$CONF")/entries.txt")
printf '<h1>%s</h1>\n<p>%s</p>\n' "$TITLE" "$entries" > "$DOC_ROOT/$CONTEXT_ROOT/index.html"
echo "page written to $DOC_ROOT/$CONTEXT_ROOT/index.html"
