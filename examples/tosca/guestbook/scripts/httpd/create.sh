#!/bin/sh
# WebServer create: the document root (busybox httpd is in the image already).
set -e
mkdir -p "$DOC_ROOT"
echo "DOC_ROOT=$DOC_ROOT" >> "$LAPIS_OPERATION_OUTPUTS"
echo "web server installed; document root $DOC_ROOT"
