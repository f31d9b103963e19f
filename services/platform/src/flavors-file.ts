// The flavors file read from disk; the rules of its content are in flavors.ts (pure, so
// domain code and tools can use them without file access).
import { readFileSync } from 'node:fs';
import type { Flavor } from '@lapis/proto/lapis/common/v1/common';
import { parse as parseYaml } from 'yaml';
import { parseFlavors } from './flavors';

export function loadFlavors(file: string): Flavor[] {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`flavors file ${file}: ${(error as Error).message}`);
  }
  return parseFlavors(doc, `flavors file ${file}`);
}
