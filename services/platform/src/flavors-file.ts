// The flavors file read from disk; the rules of its content are in flavors.ts (pure, so
// domain code and tools can use them without file access).
import type { Flavor } from '@lapis/proto/lapis/common/v1/common';
import { parseFlavors } from './flavors';
import { readYamlFile } from './yaml-file';

export function loadFlavors(file: string): Flavor[] {
  return parseFlavors(readYamlFile(file, 'flavors file'), `flavors file ${file}`);
}
