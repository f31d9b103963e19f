// What translators need of a node's software: each deploy operation with its artifact's text
// (from the files the template came with), its dependencies, and its inputs as far as they are
// known before anything runs; and what keeps an operation out of a translation, said per node.
import { posix } from 'node:path';
import { evaluate, type EvalContext } from '../functions';
import { deployOperations, type DeployOperation } from '../lifecycle-plan';
import type { NodeTemplate, Topology } from '../model';
import { isFunction } from '../values';

/** What a translation says of a node it could not (wholly) translate. */
export interface TranslationNote {
  node: NodeTemplate;
  message: string;
}

export interface OperationFile {
  /** Path beside the main template (a ".." as "_parent", so it stays inside the folder it is copied to). */
  path: string;
  content: string;
}

export interface SoftwareOperation {
  /** "Standard.create", "Configure.pre_configure_source (a.db -> b)". */
  label: string;
  /** `<node>_<operation>`: a name for what the operation becomes. */
  name: string;
  operation: string;
  playbook: boolean;
  script: OperationFile;
  dependencies: OperationFile[];
  /** Inputs with every function resolved that the translation can resolve. */
  environment: Record<string, unknown>;
}

/** Known before anything runs, or written the way the target reads it at run time (`attribute`). */
export type AttributeReader = EvalContext['attribute'];

const labelOf = (op: DeployOperation) => `${op.interface}.${op.operation}${op.relationship ? ` (${op.relationship})` : ''}`;
const insideFolder = (path: string) => path.replace(/(^|\/)\.\.(?=\/|$)/g, '$1_parent');

/**
 * The node's deploy operations that a translation can carry, and what it leaves out and why: an
 * operation whose artifact is fetched by URL or is not among the template's files; an input
 * known only once its operation runs (get_operation_output, an attribute the target cannot read).
 */
export function softwareOperations(
  topology: Topology,
  node: NodeTemplate,
  attribute?: AttributeReader,
): { operations: SoftwareOperation[]; skipped: string[] } {
  const base = posix.dirname(topology.mainFile ?? '');
  const operations: SoftwareOperation[] = [];
  const skipped: string[] = [];
  const fileOf = (path: string): OperationFile | undefined => {
    const resolved = posix.normalize(posix.join(base, path));
    const content = topology.readFile?.(resolved);
    return content === undefined ? undefined : { path: insideFolder(posix.relative(base, resolved) || resolved), content };
  };
  for (const op of deployOperations(topology, node)) {
    const label = labelOf(op);
    if (!op.primary) continue;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(op.primary)) {
      skipped.push(`${label}: ${op.primary} is fetched from the network, which the translation does not do`);
      continue;
    }
    const script = fileOf(op.primary);
    const dependencies = op.dependencies.map((d) => ({ name: d, file: fileOf(d) }));
    const missing = [...(script ? [] : [op.primary]), ...dependencies.filter((d) => !d.file).map((d) => d.name)];
    if (missing.length) {
      skipped.push(`${label}: ${missing.join(', ')} not among the template's files`);
      continue;
    }
    const ctx: EvalContext = { topology, ...op.context, attribute };
    const environment = evaluate(ctx, op.inputs) as Record<string, unknown>;
    const unknown = Object.entries(environment)
      .filter(([, v]) => containsFunction(v))
      .map(([k]) => k);
    if (unknown.length) {
      skipped.push(`${label}: input ${unknown.join(', ')} known only when it runs, left out`);
      for (const k of unknown) delete environment[k];
    }
    operations.push({
      label,
      name: `${node.name}_${op.operation}`,
      operation: op.operation,
      playbook: /\.ya?ml$/i.test(op.primary),
      script: script!,
      dependencies: dependencies.map((d) => d.file!),
      environment,
    });
  }
  return { operations, skipped };
}

function containsFunction(value: unknown): boolean {
  if (isFunction(value)) return true;
  if (Array.isArray(value)) return value.some(containsFunction);
  if (value && typeof value === 'object') return Object.values(value).some(containsFunction);
  return false;
}

/** An input value as an environment variable's text. */
export const asText = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
