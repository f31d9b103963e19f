// Errors that cross a service boundary: a gRPC status code, a message that names the
// problem, and details (AIP-193) in grpc-status-details-bin so clients can act on them.
import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { Any } from '@lapis/proto/google/protobuf/any';
import { BadRequest, ErrorInfo, protobufPackage, Status } from '@lapis/proto/lapis/common/v1/common';

const TYPE_PREFIX = 'type.googleapis.com/';
const DETAILS_KEY = 'grpc-status-details-bin';
const ERROR_INFO = `${protobufPackage}.ErrorInfo`;
const BAD_REQUEST = `${protobufPackage}.BadRequest`;

export interface FieldViolation {
  /** Path of the field, for example "spec.volumes[0].volume_id". */
  field: string;
  description: string;
}

export class LapisError extends Error {
  override name = 'LapisError';

  constructor(
    readonly code: status,
    message: string,
    /** Machine-readable reason, UPPER_SNAKE_CASE. */
    readonly reason: string,
    readonly violations: FieldViolation[] = [],
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
  }

  /** The status a grpc-js handler answers with. */
  toStatus(domain: string): Partial<StatusObject> {
    const details: Any[] = [
      Any.fromPartial({
        typeUrl: TYPE_PREFIX + ERROR_INFO,
        value: Buffer.from(ErrorInfo.encode({ reason: this.reason, domain, metadata: this.metadata }).finish()),
      }),
    ];
    if (this.violations.length > 0) {
      details.push(
        Any.fromPartial({
          typeUrl: TYPE_PREFIX + BAD_REQUEST,
          value: Buffer.from(BadRequest.encode({ fieldViolations: this.violations }).finish()),
        }),
      );
    }
    const metadata = new Metadata();
    metadata.set(
      DETAILS_KEY,
      Buffer.from(Status.encode({ code: this.code, message: this.message, details }).finish()),
    );
    return { code: this.code, details: this.message, metadata };
  }
}

const make = (code: status, fallbackReason: string) => (message: string, reason = fallbackReason, metadata?: Record<string, string>) =>
  new LapisError(code, message, reason, [], metadata);

export const invalidArgument = (violations: FieldViolation[], reason = 'INVALID_ARGUMENT') =>
  new LapisError(
    status.INVALID_ARGUMENT,
    violations.map((v) => `${v.field}: ${v.description}`).join('; '),
    reason,
    violations,
  );
export const notFound = make(status.NOT_FOUND, 'NOT_FOUND');
export const alreadyExists = make(status.ALREADY_EXISTS, 'ALREADY_EXISTS');
export const failedPrecondition = make(status.FAILED_PRECONDITION, 'FAILED_PRECONDITION');
export const permissionDenied = make(status.PERMISSION_DENIED, 'PERMISSION_DENIED');
export const unauthenticated = make(status.UNAUTHENTICATED, 'UNAUTHENTICATED');
export const resourceExhausted = make(status.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED');
export const unavailable = make(status.UNAVAILABLE, 'UNAVAILABLE');
export const aborted = make(status.ABORTED, 'ABORTED');
export const unimplemented = make(status.UNIMPLEMENTED, 'UNIMPLEMENTED');
/** For work stopped because its caller cancelled or passed its deadline (no one reads it; the log does). */
export const cancelled = make(status.CANCELLED, 'CANCELLED');

export interface ErrorDetails {
  errorInfo?: ErrorInfo;
  violations: FieldViolation[];
}

/** Reads the details a Lapis server put in a failed call's trailers. */
export function errorDetails(error: Pick<ServiceError, 'metadata'>): ErrorDetails {
  const result: ErrorDetails = { violations: [] };
  const raw = error.metadata?.get(DETAILS_KEY)[0];
  if (!(raw instanceof Buffer)) return result;
  for (const any of Status.decode(raw).details) {
    const type = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
    if (type === ERROR_INFO) result.errorInfo = ErrorInfo.decode(any.value);
    if (type === BAD_REQUEST) result.violations.push(...BadRequest.decode(any.value).fieldViolations);
  }
  return result;
}
