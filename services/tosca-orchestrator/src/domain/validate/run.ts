// What one validation of one template shares between its passes: the registry, the
// diagnostics, the topology being built, the given inputs, and the few checks every pass makes
// (a type named, a data type named, values with their functions).
import type { Diagnostics, Loc } from '../diagnostics';
import type { Loaded } from '../loader';
import type { NodeTemplate, Topology } from '../model';
import { isDict, primitiveTypes, type Dict, type Kind, type Registry, type TypeEntry } from '../registry';
import type { ValueContext } from '../values';
import { checkFunction } from './functions';

/** Where the functions inside a value are evaluated: SELF, SOURCE, TARGET, and what to call it. */
export interface FnContext {
  self?: NodeTemplate;
  source?: NodeTemplate;
  target?: NodeTemplate;
  /**
   * Inside a relationship (a requirement's or a relationship template's): SELF is the
   * relationship, so get_property/get_attribute [SELF, ...] read its type. SOURCE and TARGET
   * are unknown in a relationship template, which a requirement names later.
   */
  relationship?: { name: string; entry: TypeEntry };
  /** In a type definition: the arguments' shape only (what they name is known per template). */
  shapeOnly?: boolean;
  /** The tosca_definitions_version of the file the value is in (the main template's when absent). */
  version?: unknown;
  where: string;
}

export class ValidationRun {
  readonly registry: Registry;
  readonly diags: Diagnostics;
  readonly main: Dict;
  readonly file: string;
  readonly topo: Topology;
  /** Every loaded file's document, by name. */
  readonly docs: Loaded['docs'];
  readonly givenInputs?: Dict;
  /** Inputs given as text (a command line's), to be converted to their declared types. */
  readonly textInputs: ReadonlySet<string>;
  /** Given inputs whose value does not fit the input's own definition. */
  readonly refusedInputs = new Set<string>();
  /** Requirements resolved to a capability that limits its occurrences: "node\0capability" -> count. */
  readonly incoming = new Map<string, number>();

  constructor(loaded: Loaded, inputs?: Dict, textInputs?: Record<string, string>) {
    this.registry = loaded.registry;
    this.diags = loaded.diags;
    this.main = loaded.main!;
    this.file = loaded.mainFile;
    this.docs = loaded.docs;
    this.givenInputs = inputs || textInputs ? { ...inputs, ...textInputs } : undefined;
    this.textInputs = new Set(Object.keys(textInputs ?? {}));
    this.topo = {
      metadata: isDict(this.main.metadata) ? this.main.metadata : {},
      inputs: new Map(),
      inputValues: {},
      nodes: new Map(),
      relationshipTemplates: new Map(),
      groups: new Map(),
      policies: [],
      outputs: new Map(),
      edges: [],
      order: [],
      readFile: loaded.readFile,
      mainFile: loaded.mainFile,
      locate: (loc) => this.diags.locate(loc.file, loc.path),
      interfacesOf: (kind, type) => {
        const entry = this.registry.resolve(kind, type);
        return entry ? this.registry.interfaces(entry) : new Map();
      },
    };
  }

  loc(path: string): Loc {
    return { file: this.file, path };
  }

  // One value context for the whole run; the function context of the values being checked is a
  // field (values are checked one node at a time, synchronously).
  private currentFn: FnContext = { where: '' };
  private readonly sharedCtx: ValueContext = {
    registry: undefined as unknown as Registry,
    diags: undefined as unknown as Diagnostics,
    onFunction: (value, loc) => checkFunction(this, value, loc, this.currentFn),
    resolveStatic: (value) => {
      if (!('get_input' in value)) return undefined;
      const arg = value.get_input;
      const name = Array.isArray(arg) ? arg[0] : arg;
      if (typeof name !== 'string' || Array.isArray(arg)) return undefined;
      // A given value already refused for its input's own type is not checked again where it is used.
      if (this.refusedInputs.has(name) || !(name in this.topo.inputValues)) return undefined;
      return { value: this.topo.inputValues[name], input: this.givenInputs && name in this.givenInputs ? name : undefined };
    },
  };

  valueCtx(fn: FnContext): ValueContext {
    this.currentFn = fn;
    this.sharedCtx.registry = this.registry;
    this.sharedCtx.diags = this.diags;
    return this.sharedCtx;
  }

  /** The type `name` of `kind`, or an error at `loc` (not a name, or unknown). */
  typeRef(kind: Kind, name: unknown, loc: Loc, what: string): TypeEntry | undefined {
    if (typeof name !== 'string') {
      this.diags.error('INVALID_FIELD', `${what} must name a type`, loc);
      return undefined;
    }
    const entry = this.registry.resolve(kind, name);
    if (!entry) this.diags.error('UNKNOWN_TYPE', `${what}: unknown ${kind} type "${name}"`, loc);
    return entry;
  }

  /** A data type named by a definition: primitive or known, else an error at `loc`. */
  dataTypeRef(name: unknown, loc: Loc, what: string): void {
    if (typeof name !== 'string') return;
    if (!primitiveTypes.has(name) && !this.registry.resolve('data', name))
      this.diags.error('UNKNOWN_TYPE', `${what}: unknown data type "${name}"`, loc);
  }

  /** The node template `node` is hosted on (its first HostedOn requirement), if any. */
  hostOf(node: NodeTemplate): NodeTemplate | undefined {
    for (const r of node.requirements) {
      if (r.node && r.relationship && this.registry.derives('relationship', r.relationship, 'tosca.relationships.HostedOn'))
        return this.topo.nodes.get(r.node);
    }
    return undefined;
  }
}
