// JSON codec for the orchestrator's key-value records (they are its own, not a contract).
import type { Codec } from '@lapis/platform';

export function jsonCodec<T>(): Codec<T> {
  return {
    encode: (value: T) => ({ finish: () => Buffer.from(JSON.stringify(value)) }),
    decode: (bytes: Uint8Array): T => JSON.parse(Buffer.from(bytes).toString('utf8')) as T,
  };
}
