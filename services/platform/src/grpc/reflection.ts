// What server reflection serves: the files of the descriptor set exactly as buf compiled them
// (imports, well-known types and comments included; the set holds the contracts and
// grpc.health.v1, see proto/build-descriptors.sh).
//
// Not proto-loader's package definitions: protobufjs re-serialises those one file per package,
// with no imports, every google.protobuf type merged into struct.proto and map entries
// misnamed, so a client such as grpcurl could list the services but not link their files to
// describe or call them.
import { readFileSync } from 'node:fs';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { PackageDefinition } from '@grpc/proto-loader';

/** Every file of the descriptor set, in the form @grpc/reflection takes. */
export function reflectionPackage(descriptorSetPath = require.resolve('@lapis/proto/descriptor.binpb')): PackageDefinition {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetPath));
  const fileDescriptorProtos = set.file.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
  // @grpc/reflection reads only the fileDescriptorProtos of each entry, so one entry carries them all.
  return { '': { format: 'Protocol Buffer 3 FileDescriptorSet', type: {}, fileDescriptorProtos } } as unknown as PackageDefinition;
}
