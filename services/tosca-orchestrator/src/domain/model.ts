// The validated topology: what translation, planning and deployment work from.
import type { Diagnostic, Loc } from './diagnostics';
import type { Dict, InterfaceDef, TypeEntry } from './registry';

export interface RequirementAssignment {
  name: string;
  index: number;
  /** The target node template, when resolved. */
  node?: string;
  /** The target capability's name on that node. */
  capability?: string;
  /** The relationship type's full name. */
  relationship?: string;
  relationshipTemplate?: string;
  properties: Dict;
  loc: Loc;
}

export interface NodeTemplate {
  name: string;
  type: string;
  entry?: TypeEntry;
  /** The type and every type it derives from, full names. */
  ancestors: string[];
  raw: Dict;
  /** Property values with defaults applied (functions left in place). */
  properties: Dict;
  /** Capability name -> property values (with defaults). */
  capabilities: Record<string, { type: string; properties: Dict }>;
  requirements: RequirementAssignment[];
  /** Artifacts; `file` may be a function (get_input). */
  artifacts: Record<string, { type?: string; file?: unknown; raw: unknown }>;
  loc: Loc;
}

export type EdgeKind = 'HostedOn' | 'DependsOn' | 'ConnectsTo' | 'AttachesTo';

export interface Edge {
  /** The node that requires (it comes after the target). */
  source: string;
  target: string;
  kind: EdgeKind;
  requirement: string;
  relationship: string;
}

export interface InputDef {
  name: string;
  type: string;
  required: boolean;
  default?: unknown;
  raw: Dict;
}

export interface Topology {
  description?: string;
  metadata: Dict;
  inputs: Map<string, InputDef>;
  /** Input values: given ones over defaults. */
  inputValues: Dict;
  nodes: Map<string, NodeTemplate>;
  relationshipTemplates: Map<string, { type: string; properties: Dict; raw: Dict }>;
  groups: Map<string, { type: string; members: string[]; properties: Dict }>;
  policies: { name: string; type: string; targets: string[]; properties: Dict }[];
  outputs: Map<string, { value: unknown; description?: string }>;
  edges: Edge[];
  /** Node templates in deployment order (what a node needs comes first). */
  order: string[];
  /** A file the template came with, by normalized path (beside the main file, or in its CSAR): what translators inline. */
  readFile?: (path: string) => string | undefined;
  /** The main template's path among `files`; artifacts' paths are relative to its folder. */
  mainFile?: string;
  /** Line and column of a place in the template (for what translation says of a node). */
  locate?: (loc: Loc) => [number, number];
  /** The interfaces a node or relationship type defines through its ancestors (lifecycle operations). */
  interfacesOf?: (kind: 'node' | 'relationship', type: string) => Map<string, InterfaceDef>;
}

export interface ProcessResult {
  valid: boolean;
  diagnostics: Diagnostic[];
  topology?: Topology;
  mainFile: string;
}
