// Validation of a loaded template: type definitions, then the topology (inputs, node
// templates, relationship templates, requirements, capabilities, interfaces, artifacts, groups,
// policies, outputs, substitution mappings), functions and the dependency graph. Every problem
// is reported; nothing stops at the first. The passes run in this order, one file each.
import { at } from '../diagnostics';
import { loadTemplate, type TemplateInput } from '../loader';
import type { ProcessResult, Topology } from '../model';
import { isDict, type Dict } from '../registry';
import type { Schema } from '../values';
import { buildGraph } from './graph';
import { checkGroups, checkPolicies } from './groups-policies';
import { checkOutputs, collectInputs } from './inputs-outputs';
import { checkNodeValues, collectNode } from './node-templates';
import { checkCapabilityOccurrences, collectRelationshipTemplates, resolveRequirements } from './requirements';
import { ValidationRun } from './run';
import { checkSubstitution } from './substitution';
import { checkTypes, importedTypesKey } from './types';

const topologyKeys = new Set([
  'description',
  'inputs',
  'node_templates',
  'relationship_templates',
  'groups',
  'policies',
  'outputs',
  'substitution_mappings',
  'workflows',
]);

export interface ProcessOptions extends TemplateInput {
  /** Input values; when given, required inputs without a value are errors (warnings otherwise). */
  inputs?: Dict;
  /** Input values given as text (`--input name=1`), over `inputs`: converted to each input's type. */
  textInputs?: Record<string, string>;
}

/** Parses, loads imports and validates; the topology comes back even when invalid (best effort). */
export function processTemplate(options: ProcessOptions): ProcessResult {
  const loaded = loadTemplate(options);
  let topology: Topology | undefined;
  if (loaded.main) {
    const run = new ValidationRun(loaded, options.inputs, options.textInputs);
    checkTypes(run, importedTypesKey(loaded));
    topology = checkTopology(run);
  }
  const diagnostics = loaded.diags.sorted();
  return { valid: !diagnostics.some((d) => d.severity === 'error'), diagnostics, topology, mainFile: loaded.mainFile };
}

function checkTopology(run: ValidationRun): Topology {
  const { diags, topo } = run;
  const raw = run.main.topology_template;
  if (raw === undefined || raw === null) return topo;
  const tl = run.loc('topology_template');
  if (!isDict(raw)) {
    diags.error('INVALID_FIELD', 'topology_template must be a map', tl);
    return topo;
  }
  for (const key of Object.keys(raw))
    if (!topologyKeys.has(key)) diags.error('UNKNOWN_FIELD', `unknown field "${key}" in topology_template`, at(tl, key));
  if (typeof raw.description === 'string') topo.description = raw.description;
  collectInputs(run, raw.inputs, at(tl, 'inputs'));
  const nodes = raw.node_templates;
  if (nodes !== undefined && nodes !== null && !isDict(nodes))
    diags.error('INVALID_FIELD', 'node_templates must be a map', at(tl, 'node_templates'));
  const nl = at(tl, 'node_templates');
  // First pass: every node template and its type, so requirements can point anywhere.
  if (isDict(nodes)) {
    for (const name in nodes) collectNode(run, name, nodes[name], at(nl, name));
  }
  collectRelationshipTemplates(run, raw.relationship_templates, at(tl, 'relationship_templates'));
  for (const node of topo.nodes.values()) resolveRequirements(run, node);
  checkCapabilityOccurrences(run);
  for (const node of topo.nodes.values()) checkNodeValues(run, node);
  checkGroups(run, raw.groups, at(tl, 'groups'));
  checkPolicies(run, raw.policies, at(tl, 'policies'));
  checkOutputs(run, raw.outputs, at(tl, 'outputs'));
  checkSubstitution(run, raw.substitution_mappings, at(tl, 'substitution_mappings'));
  buildGraph(run);
  return topo;
}

export type { Schema };
