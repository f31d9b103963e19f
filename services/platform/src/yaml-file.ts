// The site's YAML files (flavors, static tokens, the scheduler's settings) are read in one
// place, so that every one that cannot be read or parsed is named the same way.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/** The document of a YAML file; throws `<what> <file>: <why>` when it cannot be read or parsed. */
export function readYamlFile(file: string, what: string): unknown {
  try {
    return parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${what} ${file}: ${(error as Error).message}`, { cause: error });
  }
}
