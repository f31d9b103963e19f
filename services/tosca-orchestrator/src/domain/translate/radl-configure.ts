// The software in IM RADL, as IM's own TOSCA translation writes it: one `configure` per node that
// has operations, named <node>_<compute>_conf, an Ansible recipe of its operations in TOSCA's
// order (a script copied into the machine with its dependencies and run with its inputs as
// environment variables; a playbook's plays with the inputs as their variables), and a
// `contextualize` item running it on the compute that hosts the node, at the step of its depth
// in the topology (what it requires configures first).
import { parse, stringify } from 'yaml';
import type { NodeTemplate, Topology } from '../model';
import { isDict, type Dict } from '../registry';
import { computeOf, isBlockStorage, isCompute, isNetwork, isPort } from './common';
import { asText, softwareOperations, type AttributeReader, type SoftwareOperation, type TranslationNote } from './software';

/** Where an operation's files go in the machine. */
const folderOf = (node: string) => `/tmp/lapis_tosca/${node}`;

/** Addresses as IM gives them to recipes: its variables, on the machine itself or through its group's first host. */
function imAttribute(topology: Topology, compute: NodeTemplate): AttributeReader {
  return (node, path) => {
    const name = String(path[0]);
    if (name === 'tosca_name') return node.name;
    const variable =
      name === 'private_address' || name === 'ip_address'
        ? 'IM_NODE_PRIVATE_IP'
        : name === 'public_address'
          ? 'IM_NODE_PUBLIC_IP'
          : undefined;
    const host = computeOf(topology, node);
    if (!variable || !host) return undefined;
    return host === compute ? `{{ ${variable} }}` : `{{ hostvars[groups['${host.name}'][0]]['${variable}'] }}`;
  };
}

/** A script's tasks: its folder, its files, then the script run there with its inputs. */
function scriptTasks(node: NodeTemplate, op: SoftwareOperation): Dict[] {
  const folder = folderOf(node.name);
  const files = [op.script, ...op.dependencies];
  const dirs = [...new Set(files.map((f) => `${folder}/${f.path}`.replace(/\/[^/]*$/, '')))];
  const script = `${folder}/${op.script.path}`;
  return [
    {
      name: `${op.name}: folders`,
      file: { path: dirs.length === 1 ? dirs[0] : '{{ item }}', state: 'directory' },
      ...(dirs.length > 1 ? { loop: dirs } : {}),
    },
    ...files.map((f) => ({
      name: `${op.name}: copy ${f.path}`,
      copy: { dest: `${folder}/${f.path}`, content: f.content, mode: f === op.script ? '0755' : '0644' },
    })),
    {
      name: op.name,
      shell: op.script.content.startsWith('#!') ? script : `/bin/sh ${script}`,
      args: { chdir: script.replace(/\/[^/]*$/, '') },
      environment: {
        ...Object.fromEntries(Object.entries(op.environment).map(([k, v]) => [k, asText(v)])),
        LAPIS_OPERATION_OUTPUTS: `${folder}/${op.operation}.outputs`,
      },
    },
  ];
}

/** A playbook's plays for IM: no hosts or connection of their own (IM runs them on the system), the inputs their variables. */
function playbookPlays(node: NodeTemplate, op: SoftwareOperation): Dict[] | undefined {
  let plays: unknown;
  try {
    plays = parse(op.script.content);
  } catch {
    return undefined;
  }
  if (!Array.isArray(plays) || !plays.every(isDict)) return undefined;
  return plays.map(({ hosts: _hosts, connection: _connection, ...play }) => ({
    ...play,
    vars: { ...(isDict(play.vars) ? play.vars : {}), ...op.environment },
    environment: { LAPIS_OPERATION_OUTPUTS: `${folderOf(node.name)}/${op.operation}.outputs` },
  }));
}

/** How deep a node sits: a compute 0, anything else one more than the deepest node it requires. */
function depthOf(topology: Topology, node: NodeTemplate, memo = new Map<string, number>()): number {
  const known = memo.get(node.name);
  if (known !== undefined) return known;
  memo.set(node.name, 0);
  const deepest = topology.edges
    .filter((e) => e.source === node.name && e.kind !== 'AttachesTo')
    .reduce((max, e) => Math.max(max, depthOf(topology, topology.nodes.get(e.target)!, memo)), 0);
  const depth = isCompute(node) ? 0 : deepest + 1;
  memo.set(node.name, depth);
  return depth;
}

export function radlConfigures(topology: Topology, notes: TranslationNote[]): { configures: string[]; contextualize: string[] } {
  const configures: string[] = [];
  const contextualize: string[] = [];
  const memo = new Map<string, number>();
  for (const name of topology.order) {
    const node = topology.nodes.get(name)!;
    if (isBlockStorage(node) || isNetwork(node) || isPort(node)) continue;
    const compute = computeOf(topology, node);
    const { operations, skipped } = softwareOperations(topology, node, compute && imAttribute(topology, compute));
    const said = [...skipped];
    const plays: Dict[] = [];
    let tasks: Dict[] = [];
    for (const op of operations) {
      if (!op.playbook) {
        tasks.push(...scriptTasks(node, op));
        continue;
      }
      const fromPlaybook = playbookPlays(node, op);
      if (!fromPlaybook) {
        said.push(`${op.label}: ${op.script.path} is not a list of plays`);
        continue;
      }
      // A playbook reads its files (templates, ...) where Ansible runs, IM's side: not the machine's.
      if (op.dependencies.length)
        said.push(`${op.label}: ${op.dependencies.map((d) => d.path).join(', ')} not carried: IM reads a recipe's files on its own side`);
      if (tasks.length) plays.push({ tasks });
      tasks = [];
      plays.push(...fromPlaybook);
    }
    if (tasks.length) plays.push({ tasks });
    if (plays.length && !compute) said.push('no compute hosts it (HostedOn), so no system runs its operations');
    if (said.length) notes.push({ node, message: `node ${name}: left out of the RADL: ${said.join('; ')}` });
    if (!plays.length || !compute) continue;
    const conf = node === compute ? `${name}_conf` : `${name}_${compute.name}_conf`;
    configures.push(`configure ${conf} (\n@begin\n---\n${stringify(plays, { lineWidth: 0 })}@end\n)`);
    contextualize.push(`  system ${compute.name} configure ${conf} step ${depthOf(topology, node, memo)}`);
  }
  return { configures, contextualize };
}
