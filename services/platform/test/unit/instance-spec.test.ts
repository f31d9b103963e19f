// The InstanceSpec rules the scheduler and the container runtime share.
import { strict as assert } from 'node:assert';
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { defaultInstanceName, labelKeyProblem, MAX_LABELS, validateInstanceSpec } from '../../src/instance-spec';

const spec = (over: Partial<InstanceSpec> = {}): InstanceSpec =>
  InstanceSpec.fromPartial({ name: 'web-1', image: 'lapis/base:1', ...over });
const fields = (s: InstanceSpec, rules = {}) => validateInstanceSpec(s, rules).map((v) => v.field);

describe('validateInstanceSpec', () => {
  it('accepts a plain spec', () => {
    assert.deepEqual(
      validateInstanceSpec(
        spec({ labels: { team: 'physics', 'example.org/tier': 'gold', 'tosca/node': 'web' }, environment: { HOME_DIR: '/x' } }),
      ),
      [],
    );
  });

  it('requires a name unless the caller names unnamed instances itself', () => {
    assert.deepEqual(fields(spec({ name: '' })), ['spec.name']);
    assert.match(validateInstanceSpec(spec({ name: '' }))[0]!.description, /required/);
    assert.deepEqual(fields(spec({ name: '' }), { nameOptional: true }), []);
  });

  it('takes names that are RFC 1123 labels only', () => {
    for (const bad of ['Web', 'web_1', '-web', 'web-', 'a'.repeat(64), 'web.1', 'wéb'])
      assert.deepEqual(fields(spec({ name: bad }), { nameOptional: true }), ['spec.name'], bad);
    for (const good of ['a', '1', 'web-1', 'a'.repeat(63)]) assert.deepEqual(fields(spec({ name: good })), [], good);
  });

  it('refuses reserved label keys: Lapis own, Kubernetes and its subdomains', () => {
    for (const key of [
      'lapis.managed',
      'lapis.instance-id',
      'lapis.dev/project',
      'kubernetes.io/hostname',
      'node.kubernetes.io/role',
      'k8s.io/x',
      'apps.k8s.io/y',
    ]) {
      assert.deepEqual(fields(spec({ labels: { [key]: 'v' } })), [`spec.labels[${key}]`], key);
      assert.match(labelKeyProblem(key), /reserved/, key);
    }
    // Only a prefix is reserved: a key that merely contains the word is fine.
    for (const key of ['lapis', 'my-lapis.dev', 'kubernetes', 'app.kubernetes-io']) assert.equal(labelKeyProblem(key), '', key);
  });

  it('checks label key syntax and values', () => {
    for (const key of ['', 'Team', 'a b', '-a', 'a-', 'a/b/c', 'a'.repeat(64), 'ä'])
      assert.match(labelKeyProblem(key), /not a valid label key/, JSON.stringify(key));
    assert.deepEqual(fields(spec({ labels: { team: 'x'.repeat(254) } })), ['spec.labels[team]']);
    assert.deepEqual(fields(spec({ labels: { team: 'x'.repeat(253) } })), []);
    assert.deepEqual(fields(spec({ labels: { team: 'a\nb' } })), ['spec.labels[team]']);
    const many = Object.fromEntries(Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`k${i}`, 'v']));
    assert.deepEqual(fields(spec({ labels: many })), ['spec.labels']);
  });

  it('checks image, environment, keys, user data, ports and volumes, naming every field', () => {
    const v = fields(
      spec({
        name: 'Bad',
        image: 'has space',
        environment: { LAPIS_TOKEN: 'x', '1x': 'y' },
        sshPublicKeys: ['ssh-ed25519 AAAA me', 'not a key'],
        userData: Buffer.alloc(64 * 1024 + 1),
        ports: [{ containerPort: 0, hostPort: 70000, protocol: 0 }],
        volumes: [{ volumeId: 'bad id', mountPath: '/data', readOnly: false }],
      }),
      { field: 'instance' },
    );
    assert.deepEqual(v, [
      'instance.name',
      'instance.image',
      'instance.environment[LAPIS_TOKEN]',
      'instance.environment[1x]',
      'instance.ssh_public_keys[1]',
      'instance.user_data',
      'instance.ports[0].container_port',
      'instance.ports[0].host_port',
      'instance.volumes[0].volume_id',
      'instance.volumes[0].mount_path',
    ]);
    assert.deepEqual(fields(spec({ image: '' })), ['spec.image']);
  });

  it('takes host ports only from the site range where the caller knows it: none without one', () => {
    const port = (hostPort: number, protocol = 1) => ({ containerPort: 80, hostPort, protocol });
    const range = { min: 30_000, max: 30_010 };
    // No range set (null): every port mapping is refused, 0 too (it would be picked from the range).
    for (const hostPort of [0, 80, 30_000])
      assert.deepEqual(fields(spec({ ports: [port(hostPort)] }), { hostPorts: null }), ['spec.ports[0].host_port'], String(hostPort));
    assert.match(validateInstanceSpec(spec({ ports: [port(80)] }), { hostPorts: null })[0]!.description, /publishes no host ports/);
    for (const hostPort of [80, 29_999, 30_011]) {
      const v = validateInstanceSpec(spec({ ports: [port(hostPort)] }), { hostPorts: range });
      assert.deepEqual(
        v.map((x) => x.field),
        ['spec.ports[0].host_port'],
        String(hostPort),
      );
      assert.match(v[0]!.description, new RegExp(`${hostPort} is outside this site's range 30000-30010`));
    }
    assert.deepEqual(
      fields(spec({ ports: [port(30_000), port(30_010), port(0), port(30_000, 2)] }), { hostPorts: range }),
      [],
      'in the range; 0; the same port over UDP',
    );
    assert.deepEqual(
      fields(spec({ ports: [port(30_001), port(30_001)] }), { hostPorts: range }),
      ['spec.ports[1].host_port'],
      'one host port twice',
    );
  });

  it('gives unnamed instances a valid name from their id', () => {
    assert.equal(defaultInstanceName('0f3a9c1e-77aa-4bbb-8ccc-123456789abc'), 'i-0f3a9c1e');
    assert.equal(defaultInstanceName('ABC_def-'), 'i-abc-def');
    assert.deepEqual(fields(spec({ name: defaultInstanceName('Odd/ID..') })), []);
  });
});
