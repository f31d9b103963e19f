// The error a pure rule throws, for asserting its code, reason and message.
import type { LapisError } from '@lapis/platform';

export function thrown(fn: () => unknown): LapisError {
  try {
    fn();
  } catch (error) {
    return error as LapisError;
  }
  throw new Error('did not throw');
}
