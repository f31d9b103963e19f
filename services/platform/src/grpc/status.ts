// What a grpc-js handler answers with for a LapisError: its code, its message, and the details
// (errors.ts encodes them) in the grpc-status-details-bin trailer.
import { Metadata, type StatusObject } from '@grpc/grpc-js';
import { DETAILS_KEY, encodeStatusDetails, type LapisError } from '../errors';

export function toGrpcStatus(error: LapisError, domain: string): Partial<StatusObject> {
  const metadata = new Metadata();
  metadata.set(DETAILS_KEY, encodeStatusDetails(error, domain));
  return { code: error.code, details: error.message, metadata };
}
