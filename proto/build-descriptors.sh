#!/bin/sh
# gen/descriptor.binpb: the files server reflection serves, all compiled by buf (imports and
# well-known types included): the contracts of this module and grpc.health.v1, taken from the
# grpc-health-check package that serves it.
set -eu
health="$(node -p "require('path').dirname(require.resolve('grpc-health-check/package.json'))")/proto"
buf build -o gen/contracts.binpb
buf build "$health" -o gen/health.binpb
# Two FileDescriptorSets written one after the other parse as one set holding both lists of
# files (protobuf merges a repeated field across concatenated messages).
cat gen/contracts.binpb gen/health.binpb > gen/descriptor.binpb
rm gen/contracts.binpb gen/health.binpb
