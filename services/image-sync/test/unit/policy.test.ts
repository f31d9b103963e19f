// Policies: YAML reading, validation naming the field, and the tag and platform decisions.
import { strict as assert } from 'node:assert';
import { LapisError } from '@lapis/platform';
import { UpstreamRemoval, type SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import {
  namedTags,
  parseDuration,
  platformMatches,
  policiesFromYaml,
  policyFromObject,
  selectTags,
  tagVersion,
} from '../../src/domain/policy';

const base = { name: 'p', source: { url: 'https://registry.example.org' }, repositories: ['library/ubuntu'] };
const make = (fields: Record<string, unknown> = {}): SyncPolicy => policyFromObject({ ...base, ...fields }, 'policy');
const fieldsOf = (run: () => unknown): string[] => {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof LapisError);
    return error.violations.map((v) => v.field).sort();
  }
  assert.fail('expected INVALID_ARGUMENT');
};

describe('policy', () => {
  it('reads a YAML file with every field, snake_case or camelCase', () => {
    const [policy] = policiesFromYaml(`
policies:
  - name: ubuntu
    source: { url: "https://r.example.org", credentials_secret: "env:UBUNTU_CREDS" }
    repositories: [library/ubuntu]
    tag_include: ['^2']
    tagExclude: ['-rc']
    semver_range: ">=22 <25"
    keep_latest: 2
    pins: { "22.04": "sha256:${'a'.repeat(64)}" }
    platforms: [linux/amd64, { os: linux, architecture: arm64, variant: v8 }]
    interval: 1h30m
    destination_prefix: lapis/
    on_upstream_removal: prune
    prepull: true
    signature: { required: true, keys: [{ id: release, pem: "-----BEGIN PUBLIC KEY-----\\nx\\n-----END PUBLIC KEY-----" }] }
`);
    assert.ok(policy);
    assert.equal(policy.interval?.seconds, 5400);
    assert.equal(policy.onUpstreamRemoval, UpstreamRemoval.PRUNE);
    assert.deepEqual(policy.tagExclude, ['-rc']);
    assert.deepEqual(policy.platforms[1], { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.equal(policy.source?.credentialsSecret, 'env:UBUNTU_CREDS');
  });

  it('refuses invalid policies naming every bad field', () => {
    assert.deepEqual(
      fieldsOf(() =>
        make({
          name: 'Bad_Name',
          source: { url: 'http://plain.example.org', credentials_secret: 'hunter2', colour: 1 },
          repositories: ['UPPER'],
          tag_include: ['('],
          semver_range: 'nope',
          pins: { v1: 'md5:1' },
          interval: 'soon',
          destination_prefix: 'no-slash',
          on_upstream_removal: 'explode',
          signature: { required: true },
          tags: [],
        }),
      ),
      [
        'policy.destination_prefix',
        'policy.interval',
        'policy.name',
        'policy.on_upstream_removal',
        'policy.pins[v1]',
        'policy.repositories[0]',
        'policy.semver_range',
        'policy.signature.keys',
        'policy.source.colour',
        'policy.source.credentials_secret',
        'policy.source.url',
        'policy.tag_include[0]',
        'policy.tags',
      ],
    );
    assert.deepEqual(
      fieldsOf(() => policiesFromYaml('policies: [{ name: a }]\n', 'f.yaml')),
      ['policies[0].repositories', 'policies[0].source.url'],
    );
    assert.deepEqual(
      fieldsOf(() => policiesFromYaml('{ nope', 'f.yaml')),
      ['f.yaml'],
    );
  });

  it('selects tags: include, exclude, semver range, keep latest, pins; never signature tags', () => {
    const tags = ['1.0.0', '1.1.0', '1.2.0-rc1', '2.0.0', 'v1.3', 'latest', 'edge', `sha256-${'b'.repeat(64)}.sig`];
    assert.deepEqual(selectTags(tags, make()), ['1.0.0', '1.1.0', '1.2.0-rc1', '2.0.0', 'edge', 'latest', 'v1.3']);
    assert.deepEqual(selectTags(tags, make({ tag_exclude: ['-rc', '^l'] })), ['1.0.0', '1.1.0', '2.0.0', 'edge', 'v1.3']);
    assert.deepEqual(selectTags(tags, make({ semver_range: '^1' })), ['1.0.0', '1.1.0', 'v1.3']);
    assert.deepEqual(selectTags(tags, make({ semver_range: '>=1', keep_latest: 2 })), ['2.0.0', 'v1.3']);
    assert.deepEqual(selectTags(tags, make({ tag_include: ['^2'], pins: { edge: `sha256:${'c'.repeat(64)}` } })), ['2.0.0', 'edge']);
    assert.deepEqual(selectTags(['b', 'a', 'c'], make({ keep_latest: 1 })), ['c']);
  });

  it('reads versions and durations, matches platforms', () => {
    assert.equal(tagVersion('v1.2'), '1.2.0');
    assert.equal(tagVersion('22.04'), '22.4.0');
    assert.equal(tagVersion('latest'), undefined);
    assert.equal(parseDuration('2m30s'), 150);
    assert.equal(parseDuration('5 minutes'), undefined);
    const amd = { os: 'linux', architecture: 'amd64', variant: '' };
    assert.equal(platformMatches(amd, []), true);
    assert.equal(platformMatches(amd, [{ os: 'linux', architecture: 'arm64', variant: '' }]), false);
    assert.equal(
      platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, [{ os: 'linux', architecture: 'arm64', variant: '' }]),
      true,
    );
  });

  it('knows the tags a policy can choose when its include patterns name them exactly', () => {
    assert.deepEqual(namedTags(make({ tag_include: ['^v1$', '^1\\.2\\.0$'] })), ['1.2.0', 'v1']);
    assert.deepEqual(namedTags(make({ tag_include: ['^v1$'], pins: { stable: `sha256:${'a'.repeat(64)}` } })), ['stable', 'v1']);
    assert.equal(namedTags(make()), undefined, 'no include: every tag');
    assert.equal(namedTags(make({ tag_include: ['^v1$', '^2'] })), undefined, 'a prefix matches more');
    assert.equal(namedTags(make({ tag_include: ['^1.2.0$'] })), undefined, 'an unescaped dot matches more');
    assert.equal(namedTags(make({ tag_include: ['v1'] })), undefined, 'unanchored');
  });
});
