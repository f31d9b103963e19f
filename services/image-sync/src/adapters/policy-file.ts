// The policy file named by LAPIS_POLICY_FILE, read once at start.
import { readFileSync } from 'node:fs';
import type { SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { policiesFromYaml } from '../domain/policy';

export function readPolicyFile(file: string): SyncPolicy[] {
  return policiesFromYaml(readFileSync(file, 'utf8'), file);
}
