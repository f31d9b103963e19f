// A registry's answer as the transport hands it on, and reading its headers.
import type { Dispatcher } from 'undici';

/** An answer: status, headers (lower-case names) and a body that must be read or dumped. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

/** A header of an answer (repeated ones joined as HTTP allows). */
export function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The media type of an answer, without parameters. */
export function contentType(answer: Answer): string {
  return (header(answer, 'content-type') ?? '').split(';')[0]!.trim();
}
