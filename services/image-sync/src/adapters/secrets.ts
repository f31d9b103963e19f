// Registry credentials from a secret reference, read at every use (a rotated secret is picked
// up without a restart): "file:/path" (a mounted Kubernetes Secret, say) or "env:NAME".
import { readFileSync } from 'node:fs';
import { SyncFailure } from '../domain/sync-failure';
import type { Credentials } from './registry/auth';

/** Reads a policy's credentials from the secret it names: "file:/path" or "env:NAME". */
export function readCredentials(secret: string): Credentials | undefined {
  if (!secret) return undefined;
  let text: string | undefined;
  if (secret.startsWith('file:')) {
    try {
      text = readFileSync(secret.slice(5), 'utf8');
    } catch (error) {
      throw new SyncFailure(
        'CREDENTIALS_UNAVAILABLE',
        `cannot read secret ${secret}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  } else if (secret.startsWith('env:')) {
    text = process.env[secret.slice(4)];
    if (text === undefined) throw new SyncFailure('CREDENTIALS_UNAVAILABLE', `secret ${secret}: variable not set`);
  } else {
    throw new SyncFailure('CREDENTIALS_UNAVAILABLE', `secret ${secret} is neither file: nor env:`);
  }
  text = text.trim();
  const colon = text.indexOf(':');
  return colon > 0 ? { username: text.slice(0, colon), password: text.slice(colon + 1) } : { token: text };
}
