// Test helpers: the conformance folder, and a local import mirror holding INDIGO's public
// custom types file (reference data in /work/shared/indigo, never copied into the repository).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const serviceDir = resolve(__dirname, '..', '..');
export const conformanceDir = join(serviceDir, 'test', 'conformance');
export const indigoTypesFile = process.env.LAPIS_INDIGO_TYPES_FILE ?? '/work/shared/indigo/custom_types.yaml';
export const indigoUrl = 'https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml';

let mirror: string | undefined;

/** A temp directory mirroring the INDIGO custom types URL (created once per run). */
export function indigoMirror(): string {
  if (mirror) return mirror;
  if (!existsSync(indigoTypesFile)) throw new Error(`INDIGO reference types not found at ${indigoTypesFile} (set LAPIS_INDIGO_TYPES_FILE)`);
  const dir = mkdtempSync(join(tmpdir(), 'lapis-tosca-mirror-'));
  const target = join(dir, 'raw.githubusercontent.com', 'indigo-dc', 'tosca-types', 'master');
  mkdirSync(target, { recursive: true });
  copyFileSync(indigoTypesFile, join(target, 'custom_types.yaml'));
  mirror = dir;
  // Shared by every test of the run; removed when the run ends.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
