// Groups (members that are node templates of the allowed types) and policies (targets that are
// node templates or groups of the allowed types), with their properties.
import { at, type Loc } from '../diagnostics';
import { isDict } from '../registry';
import { checkProperties } from './properties';
import type { ValidationRun } from './run';

export function checkGroups(run: ValidationRun, raw: unknown, loc: Loc): void {
  const { registry, diags, topo } = run;
  if (raw === undefined || raw === null) return;
  if (!isDict(raw)) return diags.error('INVALID_FIELD', 'groups must be a map', loc);
  for (const [name, d] of Object.entries(raw)) {
    const gl = at(loc, name);
    const def = isDict(d) ? d : {};
    const entry = run.typeRef('group', def.type, at(gl, 'type'), `group ${name}`);
    const members = Array.isArray(def.members) ? def.members.map(String) : [];
    if (def.members !== undefined && !Array.isArray(def.members))
      diags.error('INVALID_FIELD', `members of group ${name} must be a list`, at(gl, 'members'));
    const allowed = entry
      ? (registry
          .ancestors(entry)
          .map((t) => t.def.members)
          .find(Array.isArray) as string[] | undefined)
      : undefined;
    members.forEach((m, i) => {
      const node = topo.nodes.get(m);
      if (!node) diags.error('UNKNOWN_NODE', `group ${name}: member "${m}" is not a node template`, at(at(gl, 'members'), i));
      else if (allowed?.length && !allowed.some((t) => registry.derives('node', node.type, t))) {
        diags.error(
          'INVALID_MEMBER',
          `group ${name}: member ${m} (${node.type}) is not one of ${allowed.join(', ')}`,
          at(at(gl, 'members'), i),
        );
      }
    });
    if (entry) checkProperties(run, entry, def.properties, at(gl, 'properties'), `group ${name}`, { where: `group ${name}` });
    topo.groups.set(name, { type: entry?.name ?? String(def.type), members, properties: isDict(def.properties) ? def.properties : {} });
  }
}

export function checkPolicies(run: ValidationRun, raw: unknown, loc: Loc): void {
  const { registry, diags, topo } = run;
  if (raw === undefined || raw === null) return;
  const list: [string, unknown, Loc][] = [];
  if (Array.isArray(raw)) {
    raw.forEach((item, i) => {
      if (isDict(item) && Object.keys(item).length === 1) {
        const [n, v] = Object.entries(item)[0]!;
        list.push([n, v, at(at(loc, i), n)]);
      } else diags.error('INVALID_FIELD', 'a policy must be a map with one entry', at(loc, i));
    });
  } else if (isDict(raw)) for (const [n, v] of Object.entries(raw)) list.push([n, v, at(loc, n)]);
  else return diags.error('INVALID_FIELD', 'policies must be a list', loc);
  for (const [name, d, pl] of list) {
    const def = isDict(d) ? d : {};
    const entry = run.typeRef('policy', def.type, at(pl, 'type'), `policy ${name}`);
    const targets = Array.isArray(def.targets) ? def.targets.map(String) : [];
    const allowed = entry
      ? (registry
          .ancestors(entry)
          .map((t) => t.def.targets)
          .find(Array.isArray) as string[] | undefined)
      : undefined;
    targets.forEach((t, i) => {
      const node = topo.nodes.get(t);
      const group = topo.groups.get(t);
      if (!node && !group)
        diags.error('UNKNOWN_NODE', `policy ${name}: target "${t}" is neither a node template nor a group`, at(at(pl, 'targets'), i));
      else if (
        allowed?.length &&
        !allowed.some((a) => (node ? registry.derives('node', node.type, a) : registry.derives('group', group!.type, a)))
      ) {
        diags.error('INVALID_TARGET', `policy ${name}: target ${t} is not one of ${allowed.join(', ')}`, at(at(pl, 'targets'), i));
      }
    });
    if (entry) checkProperties(run, entry, def.properties, at(pl, 'properties'), `policy ${name}`, { where: `policy ${name}` });
    topo.policies.push({ name, type: entry?.name ?? String(def.type), targets, properties: isDict(def.properties) ? def.properties : {} });
  }
}
