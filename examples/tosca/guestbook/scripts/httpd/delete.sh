#!/bin/sh
set -e
rm -rf "$DOC_ROOT"
echo "web server removed"
