import type { Diagnostic } from '../diagnostics';
import type { Topology } from '../model';
import { translateHot } from './hot';
import { translateK8s } from './k8s';
import { translateRadl } from './radl';
import type { TranslationNote } from './software';

export type Target = 'hot' | 'radl' | 'k8s';
export const targets: Target[] = ['hot', 'radl', 'k8s'];

/** A translation, and what it says of the nodes it did not (wholly) translate, as warnings at those nodes. */
export interface Translation {
  output: string;
  warnings: Diagnostic[];
}

export function translation(topology: Topology, target: Target): Translation {
  const notes: TranslationNote[] = [];
  const output =
    target === 'hot' ? translateHot(topology) : target === 'radl' ? translateRadl(topology, notes) : translateK8s(topology, notes);
  const warnings = notes.map(({ node, message }): Diagnostic => {
    const [line, column] = topology.locate?.(node.loc) ?? [1, 1];
    return { severity: 'warning', code: 'NOT_TRANSLATED', message, file: node.loc.file, line, column, path: node.loc.path };
  });
  return { output, warnings };
}

export function translate(topology: Topology, target: Target): string {
  return translation(topology, target).output;
}
