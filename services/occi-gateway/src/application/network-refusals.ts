// The runtime refuses a bad network or address naming its request fields (address, gateway,
// ip...); an OCCI client sent attributes, so the 400 names those (occi.network.address...).
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { OcciError } from '../domain/entity';
import { OCCI_FIELDS } from '../domain/network-mapping';

export async function inOcciTerms<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if ((error as ServiceError).code !== grpcStatus.INVALID_ARGUMENT || !('metadata' in (error as object))) throw error;
    const violations = errorDetails(error as ServiceError).violations;
    if (!violations.length) throw error;
    throw new OcciError(400, violations.map((v) => `${OCCI_FIELDS[v.field] ?? v.field}: ${v.description}`).join('; '));
  }
}
