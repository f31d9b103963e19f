// A real gRPC server of the platform on a free port, with a static token file, and clients.
import { loadPackageDefinition, Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { GetOperationResponse } from '@lapis/proto/lapis/common/v1/common';
import { OperationsServiceClient } from '@lapis/proto/lapis/common/v1/operations_service';
import { Authenticator, type AuthOptions } from '../src/auth';
import { createClient, type ClientOptions } from '../src/grpc/client';
import { GrpcServer, type ServiceRegistration } from '../src/grpc/server';
import type { CallerLimits } from '../src/grpc/stream-limits';
import { staticTokenFile, TEST_TOKENS, testLog as log } from '../src/testing';

export const STATIC_TOKENS = { alice: TEST_TOKENS.alice.token, bob: TEST_TOKENS.bob.token, root: TEST_TOKENS.root.token };

export async function startServer(services: ServiceRegistration[], auth: AuthOptions = {}, callerLimits?: CallerLimits, port = 0) {
  const server = new GrpcServer({
    ...(callerLimits ? { callerLimits } : {}),
    domain: 'test.lapis.dev',
    host: '127.0.0.1',
    port,
    services,
    authenticator: new Authenticator({ staticTokensFile: staticTokenFile(), ...auth }),
    log,
  });
  return { server, address: `127.0.0.1:${await server.listen()}` };
}

export const operationsClient = (address: string, options: ClientOptions = { token: STATIC_TOKENS.alice }) =>
  createClient(OperationsServiceClient, address, options);

/** Calls GetOperation; resolves to the response or the ServiceError. */
export function getOperation(client: OperationsServiceClient, name: string, metadata = new Metadata()) {
  return new Promise<GetOperationResponse | ServiceError>((resolve) =>
    client.getOperation({ name }, metadata, (error, response) => resolve(error ?? response)),
  );
}

/** A client of any service described by a .proto file (health, reflection). */
export function dynamicClient(protoPath: string, service: string, address: string, includeDirs: string[] = []): any {
  const definition = loadSync(protoPath, { includeDirs, keepCase: false, longs: Number, enums: String, defaults: true });
  let node: any = loadPackageDefinition(definition);
  for (const part of service.split('.')) node = node[part];
  return new node(address, credentials.createInsecure());
}
