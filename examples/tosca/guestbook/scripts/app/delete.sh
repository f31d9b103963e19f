#!/bin/sh
set -e
rm -rf "$APP_DIR"
echo "guestbook removed from $APP_DIR"
