// The rules of the edge validation (validation.ts): what each request field may hold.
//
// Rules come from the field's name (conventions in ruleOf), with explicit overrides by full
// field name in OVERRIDES. Conventions rather than custom options in the .proto files: every
// string field gets a finite bound without anyone remembering to annotate it, and the fields
// whose values reach NATS keys and subjects (ids, names) follow naming the contracts already
// use consistently. Handlers keep their finer rules (an instance name is an RFC 1123 label,
// a flavor must exist); these refuse what no handler should see.
import type { DescField } from '@bufbuild/protobuf';
import { LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS, MAX_USER_DATA } from '../instance-spec';

/** What a string must be. */
export interface TextRule {
  max: number;
  /** What the value must look like; the description says it in words. */
  pattern?: { test(value: string): boolean };
  what: string;
}

export interface FieldRule {
  text?: TextRule;
  /** Largest bytes value. */
  maxBytes?: number;
  /** Most items of a repeated field, entries of a map. */
  maxItems?: number;
  /** The rule of a map's keys (values use `text`). */
  key?: TextRule;
  /** Smallest integer (page_size may not be negative). */
  min?: number;
}

// eslint-disable-next-line no-control-regex
const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/;
// A scan for one character, not a regular expression: templates run to megabytes.
const NO_NUL = { test: (value: string) => !value.includes('\u0000') };
// eslint-disable-next-line no-control-regex
const TEXT_CHARS = /^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$/;

const KiB = 1024;
const MiB = 1024 * KiB;

// Ids are made by Lapis (UUIDs, "i-…", "vol-…", "dep-…") and become NATS keys as they are.
const ID: TextRule = { max: 128, pattern: /^[A-Za-z0-9_-]+$/, what: 'an id: letters, digits, "-" and "_", at most 128' };
// Names of nodes, projects, partitions, policies...: key material too, so no "..", no
// leading or trailing dot, none of the characters NATS gives meaning to.
const NAME: TextRule = {
  max: 253,
  pattern: /^(?!.*\.\.)[A-Za-z0-9_-](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?$/,
  what: 'a name: letters, digits, ".", "-" and "_", not starting or ending with "." nor containing "..", at most 253',
};
// Operation names are parsed by their owner ("operations/<id>", "operations/tosca/<id>/<n>").
const OPERATION: TextRule = {
  max: 512,
  pattern: /^(?!.*\.\.)[A-Za-z0-9_.:/-]+$/,
  what: 'an operation name such as operations/9f2c…: letters, digits, "/", ":", ".", "-" and "_", no ".."',
};
// Idempotency keys are hashed before they are stored, so any single line will do.
const REQUEST_ID: TextRule = { max: 256, pattern: NO_CONTROL, what: 'a request id: one line without control characters, at most 256' };
const PAGE_TOKEN: TextRule = { max: 4 * KiB, pattern: /^[A-Za-z0-9_=-]*$/, what: 'a page token this service gave out' };
const PRINTABLE = /^[\x21-\x7e]+$/;
const IMAGE_REF: TextRule = { max: 512, pattern: PRINTABLE, what: 'an image reference: printable ASCII without spaces, at most 512' };
const REPOSITORY: TextRule = { max: 255, pattern: PRINTABLE, what: 'a repository: printable ASCII without spaces, at most 255' };
const TAG: TextRule = { max: 128, pattern: PRINTABLE, what: 'a tag: printable ASCII without spaces, at most 128' };
export const line = (max: number): TextRule => ({ max, pattern: NO_CONTROL, what: `one line without control characters, at most ${max}` });
const text = (max: number): TextRule => ({
  max,
  pattern: TEXT_CHARS,
  what: `text without control characters other than tabs and new lines, at most ${max}`,
});
const noNul = (max: number): TextRule => ({ max, pattern: NO_NUL, what: `text without NUL characters, at most ${max}` });
const LABEL_KEY_RULE: TextRule = {
  max: 63,
  pattern: LABEL_KEY,
  what: 'a label key: lower case letters, digits, ".", "_", "-" and "/", 1 to 63',
};

/** Every string not named otherwise. */
export const DEFAULT_TEXT = text(1024);
export const DEFAULT_MAX_BYTES = 64 * KiB;
export const DEFAULT_MAX_ITEMS = 1000;
export const DEFAULT_MAX_ENTRIES = 256;
/** Nesting of google.protobuf.Struct values (TOSCA inputs). */
export const MAX_STRUCT_DEPTH = 32;
/** A template or an imported file: generous, and still below what one message carries. */
const TEMPLATE = noNul(4 * MiB);

const NAME_FIELDS = new Set([
  'name',
  'project',
  'account',
  'parent',
  'node',
  'partition',
  'to_partition',
  'policy',
  'qos',
  'flavor',
  'anti_affinity_group',
  'network',
  'networks',
  'filesystem',
]);
const LABELS: FieldRule = { maxItems: MAX_LABELS, key: LABEL_KEY_RULE, text: line(MAX_LABEL_VALUE) };

/** The rules of fields whose name says too little, by full field name. */
const OVERRIDES: Record<string, FieldRule> = {
  'lapis.common.v1.GetOperationRequest.name': { text: OPERATION },
  'lapis.common.v1.WatchOperationRequest.name': { text: OPERATION },
  'lapis.common.v1.CancelOperationRequest.name': { text: OPERATION },
  // The handlers check the RFC 1123 label (it is the hostname) with their own message.
  'lapis.common.v1.InstanceSpec.name': { text: line(253) },
  'lapis.common.v1.InstanceSpec.image': { text: IMAGE_REF },
  'lapis.common.v1.InstanceSpec.command': { maxItems: 256, text: noNul(64 * KiB) },
  'lapis.common.v1.InstanceSpec.environment': { maxItems: 256, key: line(253), text: noNul(32 * KiB) },
  'lapis.common.v1.InstanceSpec.user_data': { maxBytes: MAX_USER_DATA },
  'lapis.common.v1.InstanceSpec.ssh_public_keys': { maxItems: 32, text: line(16 * KiB) },
  'lapis.common.v1.InstanceSpec.ports': { maxItems: 256 },
  'lapis.common.v1.InstanceSpec.volumes': { maxItems: 64 },
  'lapis.common.v1.InstanceSpec.devices': { maxItems: 64 },
  'lapis.common.v1.InstanceSpec.networks': { maxItems: 16, text: NAME },
  'lapis.common.v1.VolumeMount.mount_path': { text: line(255) },
  'lapis.common.v1.DeviceRequest.ids': { maxItems: 64, text: line(1024) },
  'lapis.common.v1.DeviceRequest.cdi_names': { maxItems: 64, text: line(253) },
  'lapis.runtime.v1.AttachVolumeRequest.mount_path': { text: line(255) },
  'lapis.runtime.v1.ExecInInstanceRequest.files': { maxItems: 64 },
  'lapis.runtime.v1.InstanceFile.path': { text: line(1024) },
  'lapis.runtime.v1.InstanceFile.content': { maxBytes: MiB },
  'lapis.runtime.v1.ExecInInstanceRequest.argv': { maxItems: 256, text: noNul(64 * KiB) },
  'lapis.runtime.v1.ExecInInstanceRequest.environment': { maxItems: 256, key: line(253), text: noNul(32 * KiB) },
  'lapis.runtime.v1.ExecInInstanceRequest.working_dir': { text: line(1024) },
  'lapis.images.v1.ResolveImageRequest.reference': { text: IMAGE_REF },
  'lapis.images.v1.GetImageRequest.repository': { text: REPOSITORY },
  'lapis.images.v1.GetImageRequest.tag': { text: TAG },
  'lapis.images.v1.ListImagesRequest.repository_prefix': { text: REPOSITORY },
  'lapis.images.v1.SyncNowRequest.repositories': { text: REPOSITORY },
  'lapis.images.v1.SyncPolicy.repositories': { text: REPOSITORY },
  'lapis.images.v1.SyncPolicy.tag_include': { maxItems: 64, text: line(1024) },
  'lapis.images.v1.SyncPolicy.tag_exclude': { maxItems: 64, text: line(1024) },
  'lapis.images.v1.SyncPolicy.pins': { maxItems: 1000, key: TAG, text: line(128) },
  'lapis.images.v1.SyncPolicy.destination_prefix': { text: REPOSITORY },
  'lapis.images.v1.SyncPolicy.platforms': { maxItems: 64 },
  'lapis.images.v1.RegistrySource.url': { text: line(2048) },
  'lapis.images.v1.SignaturePolicy.keys': { maxItems: 64 },
  'lapis.images.v1.SignaturePolicy.PublicKey.id': { text: NAME },
  'lapis.images.v1.SignaturePolicy.PublicKey.pem': { text: text(16 * KiB) },
  'lapis.tosca.v1.TemplateSource.yaml': { text: TEMPLATE },
  'lapis.tosca.v1.TemplateSource.csar': { maxBytes: 4 * MiB },
  'lapis.tosca.v1.TemplateSource.file_name': { text: line(1024) },
  'lapis.tosca.v1.TemplateSource.files': { maxItems: 256, key: line(1024), text: TEMPLATE },
  'lapis.scheduler.v1.SetAccountRequest.user_shares': { maxItems: 10_000, key: line(253) },
};

/** The rule of a field: its override, else what its name says. */
export function ruleOf(field: DescField): FieldRule {
  const override = OVERRIDES[`${field.parent.typeName}.${field.name}`];
  if (override) return override;
  const name = field.name;
  if (name === 'labels') return LABELS;
  if (name === 'request_id') return { text: REQUEST_ID };
  if (name === 'page_token') return { text: PAGE_TOKEN };
  if (name === 'page_size') return { min: 0 };
  if (name === 'id' || name.endsWith('_id') || name.endsWith('_ids')) return { text: ID };
  if (NAME_FIELDS.has(name)) return { text: NAME };
  return {};
}

/** Why `value` breaks `rule` (completing "must be ..."), or '' when it does not. */
export function textProblem(value: string, rule: TextRule): string {
  if (value.length > rule.max) return `${rule.what} (it has ${value.length} characters)`;
  if (rule.pattern && !rule.pattern.test(value)) return rule.what;
  return '';
}
