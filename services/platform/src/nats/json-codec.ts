// JSON in key-value entries, for the records a service keeps for itself (not a contract
// between services, so not protobuf): one codec for every service that keeps such records.
import type { Codec } from './kv';

const decoder = new TextDecoder();

export function jsonCodec<T>(): Codec<T> {
  return {
    encode: (value) => ({ finish: () => Buffer.from(JSON.stringify(value)) }),
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as T,
  };
}
