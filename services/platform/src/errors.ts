// Errors that cross a service boundary: a gRPC status code, a message that names the
// problem, and details (AIP-193) in grpc-status-details-bin so clients can act on them.
// Pure (no gRPC library): domain code throws these; grpc/Code.ts turns them into what
// grpc-js answers with.
import { Any } from '@lapis/proto/google/protobuf/any';
import { BadRequest, ErrorInfo, protobufPackage, Status } from '@lapis/proto/lapis/common/v1/common';

/** The gRPC status codes by name (google.rpc.Code; the same numbers as grpc-js's `status`). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const CODE_NAMES = new Map<number, string>(Object.entries(Code).map(([name, code]) => [code, name]));

/** The name of a status code ("NOT_FOUND"), for logs; the number itself if it has none. */
export function codeName(code: number): string {
  return CODE_NAMES.get(code) ?? String(code);
}

const TYPE_PREFIX = 'type.googleapis.com/';
/** The trailer that carries a google.rpc.Status with the details. */
export const DETAILS_KEY = 'grpc-status-details-bin';
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
    readonly code: Code,
    message: string,
    /** Machine-readable reason, UPPER_SNAKE_CASE. */
    readonly reason: string,
    readonly violations: FieldViolation[] = [],
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
  }
}

const make =
  (code: Code, fallbackReason: string) =>
  (message: string, reason = fallbackReason, metadata?: Record<string, string>) =>
    new LapisError(code, message, reason, [], metadata);

export const invalidArgument = (violations: FieldViolation[], reason = 'INVALID_ARGUMENT') =>
  new LapisError(Code.INVALID_ARGUMENT, violations.map((v) => `${v.field}: ${v.description}`).join('; '), reason, violations);
export const notFound = make(Code.NOT_FOUND, 'NOT_FOUND');
export const alreadyExists = make(Code.ALREADY_EXISTS, 'ALREADY_EXISTS');
export const failedPrecondition = make(Code.FAILED_PRECONDITION, 'FAILED_PRECONDITION');
export const permissionDenied = make(Code.PERMISSION_DENIED, 'PERMISSION_DENIED');
export const unauthenticated = make(Code.UNAUTHENTICATED, 'UNAUTHENTICATED');
export const resourceExhausted = make(Code.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED');
export const unavailable = make(Code.UNAVAILABLE, 'UNAVAILABLE');
export const aborted = make(Code.ABORTED, 'ABORTED');
export const unimplemented = make(Code.UNIMPLEMENTED, 'UNIMPLEMENTED');
/** For work stopped because its caller cancelled or passed its deadline (no one reads it; the log does). */
export const cancelled = make(Code.CANCELLED, 'CANCELLED');

export interface ErrorDetails {
  errorInfo?: ErrorInfo;
  violations: FieldViolation[];
}

/** The google.rpc.Status a failed call carries in DETAILS_KEY: code, message, ErrorInfo, BadRequest. */
export function encodeStatusDetails(error: LapisError, domain: string): Buffer {
  const details: Any[] = [
    Any.fromPartial({
      typeUrl: TYPE_PREFIX + ERROR_INFO,
      value: Buffer.from(ErrorInfo.encode({ reason: error.reason, domain, metadata: error.metadata }).finish()),
    }),
  ];
  if (error.violations.length > 0) {
    details.push(
      Any.fromPartial({
        typeUrl: TYPE_PREFIX + BAD_REQUEST,
        value: Buffer.from(BadRequest.encode({ fieldViolations: error.violations }).finish()),
      }),
    );
  }
  return Buffer.from(Status.encode({ code: error.code, message: error.message, details }).finish());
}

/** Trailers as a failed call carries them (grpc-js's Metadata has this shape). */
export interface TrailerSource {
  metadata?: { get(key: string): unknown[] } | null;
}

/** Reads the details a Lapis server put in a failed call's trailers. */
export function errorDetails(error: TrailerSource): ErrorDetails {
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
