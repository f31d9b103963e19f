import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { Code, codeName, errorDetails, invalidArgument, notFound } from '../../src/errors';
import { toGrpcStatus } from '../../src/grpc/status';

describe('errors without a gRPC library', () => {
  it('names the codes with the numbers grpc-js uses', () => {
    const grpcNames = Object.keys(status).filter((k) => Number.isNaN(Number(k)));
    assert.deepEqual(Object.keys(Code).sort(), grpcNames.sort());
    for (const name of grpcNames) assert.equal(Code[name as keyof typeof Code], status[name as keyof typeof status], name);
    assert.equal(codeName(Code.FAILED_PRECONDITION), 'FAILED_PRECONDITION');
    assert.equal(codeName(99), '99');
  });

  it('carries reason and field violations through the status trailer', () => {
    const error = invalidArgument([{ field: 'spec.name', description: 'required' }], 'BAD_SPEC');
    const answered = toGrpcStatus(error, 'lapis.test');
    assert.equal(answered.code, status.INVALID_ARGUMENT);
    assert.equal(answered.details, 'spec.name: required');
    const details = errorDetails({ metadata: answered.metadata });
    assert.equal(details.errorInfo?.reason, 'BAD_SPEC');
    assert.equal(details.errorInfo?.domain, 'lapis.test');
    assert.deepEqual(details.violations, [{ field: 'spec.name', description: 'required' }]);
    assert.deepEqual(errorDetails({ metadata: toGrpcStatus(notFound('gone'), 'd').metadata }).violations, []);
  });
});
