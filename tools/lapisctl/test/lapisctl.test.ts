// lapisctl as a user runs it: the built CLI as a child process against the real mesh (NATS,
// Docker, registries, and image-sync, container-runtime, scheduler as their own processes;
// the tosca-orchestrator too when it starts). Nothing is mocked.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMesh, type Mesh } from '@lapis/mesh';
import { until } from '@lapis/platform/testing';
import { docker } from '@lapis/testenv';

const MAIN = join(__dirname, '../src/main.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('lapisctl against the real mesh', function () {
  this.timeout(240_000);
  let mesh: Mesh;
  let dir: string;
  let home: string;
  let toscaUp = false;

  const run = (args: string[], env: Record<string, string | undefined> = {}): Promise<Result> => {
    const full: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      XDG_CONFIG_HOME: '',
      LAPIS_TOKEN: 'alice-token',
      LAPIS_SCHEDULER_ADDRESS: mesh?.addresses.scheduler ?? '127.0.0.1:1',
      LAPIS_RUNTIME_ADDRESS: mesh?.addresses['container-runtime'] ?? '127.0.0.1:1',
      LAPIS_IMAGES_ADDRESS: mesh?.addresses['image-sync'] ?? '127.0.0.1:1',
      LAPIS_TOSCA_ADDRESS: mesh?.addresses['tosca-orchestrator'] ?? '127.0.0.1:1',
      ...env,
    };
    for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN, ...args], { env: full, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  };
  /** Runs and expects exit 0; the output is in the failure message otherwise. */
  const ok = async (args: string[], env?: Record<string, string | undefined>) => {
    const result = await run(args, env);
    assert.equal(result.code, 0, `lapisctl ${args.join(' ')} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
    return result;
  };
  const json = async <T = Record<string, unknown>>(args: string[]) => JSON.parse((await ok(['-o', 'json', ...args])).stdout) as T;
  const noStackTrace = (text: string) => assert.doesNotMatch(text, /^\s+at .+\(.*:\d+:\d+\)$/m, `a stack trace was printed:\n${text}`);
  const rowOf = (table: string, id: string) => table.split('\n').find((line) => line.startsWith(`${id} `) || line.includes(` ${id} `));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lapisctl-test-'));
    home = join(dir, 'home');
    mkdirSync(home);
    writeFileSync(
      join(dir, 'bad.yaml'),
      [
        'tosca_definitions_version: tosca_simple_yaml_1_3',
        'topology_template:',
        '  node_templates:',
        '    web:',
        '      type: tosca.nodes.NoSuchType',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'app.yaml'),
      [
        'tosca_definitions_version: tosca_simple_yaml_1_3',
        'imports:',
        '  - https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml',
        'topology_template:',
        '  inputs:',
        '    greeting: { type: string, default: hello }',
        '    count: { type: integer, default: 1 }',
        '  node_templates:',
        '    app:',
        '      type: tosca.nodes.indigo.Container.Application.Docker',
        '      properties:',
        '        command: "sleep 3600"',
        '      artifacts:',
        '        image:',
        '          file: lapis/busybox:1.36',
        '          type: tosca.artifacts.Deployment.Image.Container.Docker',
        '      requirements:',
        '        - host: runtime',
        '    runtime:',
        '      type: tosca.nodes.indigo.Container.Runtime.Docker',
        '      capabilities:',
        '        host:',
        '          properties: { num_cpus: 0.5, mem_size: 256 MB }',
        '  outputs:',
        '    greeting: { value: { get_input: greeting } }',
        '    count: { value: { get_input: count } }',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'inputs.yaml'), 'greeting: hi-from-inputs\n');
    mesh = await startMesh({ services: ['image-sync', 'container-runtime', 'scheduler'] });
    try {
      await mesh.start('tosca-orchestrator');
      toscaUp = true;
    } catch (error) {
      // Being built by someone else: the deployment tests are skipped (and say why).
      console.warn(`tosca-orchestrator did not start: ${(error as Error).message.split('\n')[0]}`);
    }
  });

  after(async () => {
    await mesh?.stop();
    // The mesh keeps its state dir (logs) after stop; this run's is removed.
    if (mesh) rmSync(mesh.stateDir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('usage', () => {
    it('prints --help for the root and every command group and command, exit 0', async () => {
      const root = await ok(['--help']);
      assert.match(root.stdout, /^Usage: lapisctl \[options\] \[command\]/);
      const groups = ['deployment', 'instance', 'volume', 'queue', 'priority', 'fairshare', 'claim', 'image', 'tosca'];
      for (const group of groups) assert.match(root.stdout, new RegExp(`^  ${group}[| ]`, 'm'));
      const results = await Promise.all(groups.map((g) => ok([g, '--help'])));
      results.forEach((r, i) => {
        assert.match(r.stdout, new RegExp(`^Usage: lapisctl ${groups[i]}`));
        assert.match(r.stdout, /Global options:/);
      });
      const leaf = await ok(['volume', 'attach', '--help']);
      assert.match(leaf.stdout, /^Usage: lapisctl volume attach \[options\] <VOLUME> <INSTANCE>/);
      assert.match(leaf.stdout, /--mount <PATH>/);
    });

    it('exits 2 with a message on usage errors', async () => {
      const unknown = await run(['instance', 'frobnicate']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown command 'frobnicate'\nrun "lapisctl instance --help" for usage/);
      const option = await run(['queue', '--bogus']);
      assert.equal(option.code, 2);
      assert.match(option.stderr, /unknown option '--bogus'/);
      const missing = await run(['claim', 'submit', '--flavor', 'm1.tiny']);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /--image is required/);
      for (const args of [
        ['image', 'sync', '--wait', '--wait-timeout', 'soon'],
        ['claim', 'submit', '--image', 'x', '--flavor', 'm1.tiny', '--wait', '--wait-timeout', '-1'],
      ]) {
        const timeout = await run(args, { LAPIS_TOKEN: 'admin-token' });
        assert.equal(timeout.code, 2, args.join(' '));
        assert.match(timeout.stderr, /--wait-timeout must be a number of seconds/);
      }
      const format = await run(['queue', '-o', 'xml']);
      assert.equal(format.code, 2);
      assert.match(format.stderr, /'xml' is invalid\. Allowed choices are table, json, yaml/);
      const input = await run(['deployment', 'create', 'app.yaml', '--input', 'count']);
      assert.equal(input.code, 2);
      assert.match(input.stderr, /--input takes NAME=VALUE \(got "count"\)/);
      const group = await run(['instance']);
      assert.equal(group.code, 2, 'a group without its command');
      assert.match(group.stderr, /Commands:\n {2}list/);
    });

    it('exits 2 and says where a token comes from when there is none', async () => {
      const result = await run(['instance', 'list'], { LAPIS_TOKEN: undefined });
      assert.equal(result.code, 2);
      assert.match(result.stderr, /no token: pass --token, set LAPIS_TOKEN, or put "token: \.\.\." in .*\.config\/lapis\/config\.yaml/);
      noStackTrace(result.stderr);
    });

    it('takes the token from ~/.config/lapis/config.yaml', async () => {
      const configHome = join(dir, 'configured');
      mkdirSync(join(configHome, '.config', 'lapis'), { recursive: true });
      writeFileSync(join(configHome, '.config', 'lapis', 'config.yaml'), 'token: alice-token\n');
      const result = await ok(['image', 'list'], { LAPIS_TOKEN: undefined, HOME: configHome });
      assert.match(result.stdout, /^REPOSITORY\s+TAG\s+DIGEST/);
      assert.match(result.stdout, /lapis\/busybox\s+1\.36\s+sha256:/);
    });

    it('says which service it cannot reach, in one line, exit 1', async () => {
      const result = await run(['queue', '--scheduler', '127.0.0.1:1', '--timeout', '5']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^error: cannot reach the scheduler at 127\.0\.0\.1:1 \(UNAVAILABLE\)/);
      noStackTrace(result.stderr);
    });
  });

  describe('a claim through its life', () => {
    let id: string;

    it('submits a claim (-o json parses, enums as words) and the queue shows it', async () => {
      const claim = await json([
        'claim',
        'submit',
        '--image',
        mesh.images[0]!,
        '--flavor',
        'm1.tiny',
        '--name',
        'cli-web',
        '--',
        'sh',
        '-c',
        'echo hello-lapisctl; sleep 3600',
      ]);
      id = claim.id as string;
      assert.ok(id, 'the claim has an id');
      assert.equal(claim.project, 'physics');
      assert.match(String(claim.state), /^(PENDING|PLACED|RUNNING)$/);
      const queue = await ok(['queue']);
      assert.match(queue.stdout, /^CLAIM\s+NAME\s+PROJECT\s+USER\s+STATE\s+INSTANCE\s+PRIORITY\s+NODE\(REASON\)/);
      const row = rowOf(queue.stdout, id);
      assert.ok(row, `the queue lists ${id}:\n${queue.stdout}`);
      assert.match(row, /cli-web\s+physics\s+alice\s+(PENDING|PLACED|RUNNING)\s/);
      const listed = await json<Array<Record<string, unknown>>>(['queue']);
      const entry = listed.find((c) => c.id === id);
      assert.ok(entry);
      assert.equal(typeof entry.state, 'string');
    });

    it('shows the instance RUNNING in instance list, with its logs', async () => {
      await until(async () => (await json(['instance', 'get', id])).state === 'RUNNING' || undefined, 'the instance to run', 90_000);
      const list = await ok(['instance', 'list']);
      const row = rowOf(list.stdout, id);
      assert.ok(row, `instance list shows ${id}:\n${list.stdout}`);
      assert.match(row, /cli-web\s+physics\s+RUNNING\s+lapis\/busybox:1\.36\s+m1\.tiny\s/);
      const get = await ok(['instance', 'get', id]);
      assert.match(get.stdout, /^State:\s+RUNNING$/m);
      const claim = await ok(['claim', 'get', id]);
      assert.match(claim.stdout, /^Instance state:\s+RUNNING$/m);
      await until(async () => (await ok(['instance', 'logs', id])).stdout.includes('hello-lapisctl') || undefined, 'the log line', 20_000);
    });

    it('stops and starts the instance', async () => {
      const stop = await ok(['instance', 'stop', id, '--grace', '1']);
      assert.match(stop.stdout, new RegExp(`^instance ${id} \\w+`));
      await until(async () => (await json(['instance', 'get', id])).state === 'STOPPED' || undefined, 'the instance to stop', 30_000);
      await ok(['instance', 'start', id]);
      await until(async () => (await json(['instance', 'get', id])).state === 'RUNNING' || undefined, 'the instance to run again', 30_000);
      const reboot = await ok(['instance', 'reboot', id, '--grace', '1']);
      assert.match(reboot.stdout, new RegExp(`^instance ${id} \\w+`));
      await until(
        async () => (await json(['instance', 'get', id])).state === 'RUNNING' || undefined,
        'the instance to run after the reboot',
        30_000,
      );
    });

    it('creates a volume, attaches it to the running instance, detaches and deletes it', async () => {
      const volume = await json(['volume', 'create', 'cli-data', '--size', '64Mi']);
      const volumeId = volume.id as string;
      assert.equal(volume.sizeBytes, 64 * 1024 * 1024);
      await until(
        async () => (await json(['volume', 'get', volumeId])).state === 'AVAILABLE' || undefined,
        'the volume to be available',
        30_000,
      );
      const list = await ok(['volume', 'list']);
      assert.match(rowOf(list.stdout, volumeId) ?? '', /cli-data\s+64Mi\s+AVAILABLE/);
      const attach = await ok(['volume', 'attach', volumeId, id, '--mount', '/mnt/data']);
      assert.match(attach.stdout, new RegExp(`^volume ${volumeId} ATTACHED to ${id} at /mnt/data`));
      const attached = await json<{ state: string; attachment: { instanceId: string; mountPath: string } }>(['volume', 'get', volumeId]);
      assert.equal(attached.state, 'ATTACHED');
      assert.deepEqual([attached.attachment.instanceId, attached.attachment.mountPath], [id, '/mnt/data']);
      const container = (await docker(['ps', '-q', '--filter', `label=lapis.instance-id=${id}`])).trim();
      assert.ok(container, 'the instance has a container');
      assert.match(await docker(['exec', container, 'sh', '-c', 'grep " /mnt/data " /proc/mounts']), /\/mnt\/data/);
      const detach = await ok(['volume', 'detach', volumeId]);
      assert.match(detach.stdout, new RegExp(`^volume ${volumeId} AVAILABLE`));
      await ok(['volume', 'delete', volumeId]);
      const gone = await run(['volume', 'get', volumeId]);
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /NOT_FOUND/);
    });

    it('submits with --wait (returns once it runs), follows its logs with -f until Ctrl-C, cancels it', async () => {
      const submitted = await ok([
        'claim',
        'submit',
        '--image',
        mesh.images[0]!,
        '--flavor',
        'm1.tiny',
        '--wait',
        '--',
        'sh',
        '-c',
        'echo first; sleep 2; echo second; sleep 3600',
      ]);
      const claimId = /^claim (\S+) RUNNING, instance RUNNING on \S+$/m.exec(submitted.stdout)?.[1];
      assert.ok(claimId, submitted.stdout + submitted.stderr);
      const child = spawn(process.execPath, [MAIN, 'instance', 'logs', claimId, '-f'], {
        env: { ...process.env, HOME: home, LAPIS_TOKEN: 'alice-token', LAPIS_RUNTIME_ADDRESS: mesh.addresses['container-runtime'] },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
      await until(() => out.includes('second') || undefined, 'the followed log to show a later line', 30_000);
      child.kill('SIGINT');
      assert.equal(await closed, 0, out);
      assert.match(out, /^first\nsecond\n$/);
      const cancelled = await ok(['claim', 'cancel', claimId]);
      assert.match(cancelled.stdout, new RegExp(`^claim ${claimId} \\w+`));
      await until(
        async () => (await docker(['ps', '-aq', '--filter', `label=lapis.instance-id=${claimId}`])).trim() === '' || undefined,
        'its container to go',
        30_000,
      );
    });

    it('shows why a claim waits (queue reason, priority factors) and cancels it', async () => {
      // No node here has a GPU: a g1.small claim waits.
      const pending = await json(['claim', 'submit', '--image', mesh.images[0]!, '--flavor', 'g1.small', '--name', 'cli-gpu']);
      const pendingId = pending.id as string;
      await until(
        async () => ((await json(['claim', 'get', pendingId])).pendingReason ?? 'NEW') !== 'NEW' || undefined,
        'a scheduling cycle to look at it',
        30_000,
      );
      const queue = await ok(['queue', '--state', 'PENDING']);
      assert.match(
        rowOf(queue.stdout, pendingId) ?? '',
        /cli-gpu\s+physics\s+alice\s+PENDING\s+\S+\s+\d\.\d{4}\s+\((RESOURCES|NO_MATCHING_NODE|PRIORITY|QUOTA_EXCEEDED|PARTITION_FULL)\)/,
      );
      const priority = await ok(['priority', pendingId]);
      assert.match(rowOf(priority.stdout, pendingId) ?? '', /physics\s+alice\s+\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}/);
      const cancelled = await ok(['claim', 'cancel', pendingId]);
      assert.equal(cancelled.stdout, `claim ${pendingId} CANCELLED\n`);
      assert.equal(rowOf((await ok(['queue'])).stdout, pendingId), undefined, 'a cancelled claim leaves the queue');
      assert.match(rowOf((await ok(['queue', '--all'])).stdout, pendingId) ?? '', /CANCELLED/);
    });

    it('prints priority (sprio) and fair share (sshare) tables', async () => {
      const priority = await ok(['priority']);
      assert.match(priority.stdout, /^CLAIM\s+PROJECT\s+USER\s+PRIORITY\s+AGE\s+FAIRSHARE\s+JOBSIZE\s+PARTITION\s+QOS$/m);
      assert.match(priority.stdout, /^Weights\s+-\s+-\s+-\s+\d+\.\d{4}/m);
      const fairshare = await ok(['fairshare']);
      assert.match(
        fairshare.stdout,
        /^ACCOUNT\s+USER\s+RAW_SHARES\s+NORM_SHARES\s+RAW_USAGE\s+NORM_USAGE\s+EFFECTV_USAGE\s+FAIRSHARE\s+LEVEL_FS$/m,
      );
      assert.match(fairshare.stdout, /^physics\s/m);
      assert.match(fairshare.stdout, /^algorithm (CLASSIC|FAIR_TREE)/m);
      const parsed = await json<{ entries: unknown[]; algorithm: string }>(['fairshare']);
      assert.ok(Array.isArray(parsed.entries));
      assert.match(parsed.algorithm, /^(CLASSIC|FAIR_TREE)$/);
    });

    it('reports an unknown instance as NOT_FOUND with its reason, exit 1, no stack trace', async () => {
      const result = await run(['instance', 'get', 'no-such-instance']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^error: instance no-such-instance not found \(NOT_FOUND, INSTANCE_NOT_FOUND\)$/m);
      noStackTrace(result.stderr);
      assert.equal(result.stdout, '');
    });

    it('deletes the instance', async () => {
      await ok(['instance', 'delete', id, '--grace', '1']);
      await until(
        async () => {
          const result = await run(['-o', 'json', 'instance', 'get', id]);
          return (
            (result.code === 1 && /NOT_FOUND/.test(result.stderr)) ||
            (result.code === 0 && JSON.parse(result.stdout).state === 'DELETED') ||
            undefined
          );
        },
        'the instance to be gone',
        30_000,
      );
      assert.equal((await docker(['ps', '-aq', '--filter', `label=lapis.instance-id=${id}`])).trim(), '', 'its container is removed');
    });
  });

  describe('images', () => {
    it('lists the catalogue, and the sync status (admins only)', async () => {
      const images = await json<Array<{ repository: string; tag: string; digest: string }>>(['image', 'list']);
      assert.ok(images.some((i) => i.repository.endsWith('lapis/busybox') && i.tag === '1.36' && i.digest.startsWith('sha256:')));
      const denied = await run(['image', 'status']);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /\(PERMISSION_DENIED, ADMIN_ONLY\)$/m);
      const status = await ok(['image', 'status'], { LAPIS_TOKEN: 'admin-token' });
      assert.match(status.stdout, /^POLICY\s+REPOSITORY\s+RESULT/);
      assert.match(status.stdout, /^upstream\s+lapis\/busybox\s+SUCCEEDED/m);
    });

    it('syncs a policy now and waits for its result', async () => {
      const sync = await run(['image', 'sync', 'upstream', '--wait', '--wait-timeout', '120'], { LAPIS_TOKEN: 'admin-token' });
      assert.equal(sync.code, 0, sync.stdout + sync.stderr);
      assert.match(sync.stdout, /^POLICY\s+REPOSITORY\s+RESULT/);
      assert.match(sync.stdout, /^upstream\s+lapis\/busybox\s+SUCCEEDED/m);
    });
  });

  describe('tosca, offline', () => {
    it('validates a bad template: file:line:col: message, exit 1', async () => {
      const result = await run(['tosca', 'validate', 'bad.yaml'], { LAPIS_TOKEN: undefined });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^bad\.yaml:5:7: error: .*unknown node type "tosca\.nodes\.NoSuchType"/m);
    });

    it('validates and translates a good template without a token or services', async () => {
      const valid = await ok(['tosca', 'validate', 'app.yaml', '--inputs', 'inputs.yaml'], { LAPIS_TOKEN: undefined });
      assert.match(valid.stdout, /app\.yaml: valid; deployment order: runtime, app/);
      const k8s = await ok(['tosca', 'translate', '--to', 'k8s', 'app.yaml'], { LAPIS_TOKEN: undefined });
      assert.match(k8s.stdout, /^kind: Deployment$/m);
      assert.match(k8s.stdout, /image: lapis\/busybox:1\.36/);
    });
  });

  describe('deployments (tosca-orchestrator)', () => {
    let deploymentId: string;
    beforeEach(function () {
      if (!toscaUp) this.skip();
    });

    it("refuses an --input whose text is not of the input's type, naming it, exit 1", async () => {
      const refused = await run(['deployment', 'create', 'app.yaml', '--input', 'count=two']);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /text_inputs\.count: input count: "two" is not a valid integer/);
      assert.match(refused.stderr, /INVALID_INPUT/);
      noStackTrace(refused.stderr);
    });

    it('creates a deployment from a file with inputs, waits for it and prints its outputs', async () => {
      const created = await run(['deployment', 'create', 'app.yaml', '--inputs', 'inputs.yaml', '--input', 'count=2', '--wait']);
      deploymentId = /^ID:\s+(\S+)$/m.exec(created.stdout)?.[1] ?? '';
      assert.ok(deploymentId, `a deployment was made:\n${created.stdout}\n${created.stderr}`);
      assert.match(created.stderr, new RegExp(`^deployment ${deploymentId} created$`, 'm'));
      assert.equal(created.code, 0, `the deployment failed:\n${created.stdout}\n${created.stderr}`);
      assert.match(created.stdout, /^State:\s+DEPLOYED$/m);
      assert.match(created.stdout, /^Nodes:\n {2}NAME\s+TYPE\s+STATE/m);
      assert.match(created.stdout, /^Outputs:\n {2}greeting: hi-from-inputs$/m);
      const list = await ok(['deployment', 'list']);
      assert.match(rowOf(list.stdout, deploymentId) ?? '', /physics\s+DEPLOYED\s/);
      const got = await json<{ state: string; outputs: Record<string, unknown>; nodes: Array<{ name: string; instanceIds: string[] }> }>([
        'deployment',
        'get',
        deploymentId,
      ]);
      assert.equal(got.state, 'DEPLOYED');
      assert.equal(got.outputs.greeting, 'hi-from-inputs');
      assert.equal(got.outputs.count, 2, 'the text "2" became the integer its input declares');
      const instanceId = got.nodes.find((n) => n.name === 'app')?.instanceIds[0];
      assert.ok(instanceId, 'the app node has an instance');
      assert.equal((await json(['instance', 'get', instanceId])).state, 'RUNNING');
    });

    it('updates its inputs and waits; watch --until-done prints its state and exits 0', async () => {
      writeFileSync(join(dir, 'inputs2.yaml'), 'greeting: updated\n');
      const updated = await ok(['deployment', 'update', deploymentId, '--inputs', 'inputs2.yaml', '--wait']);
      assert.match(updated.stdout, /^State:\s+DEPLOYED$/m);
      assert.match(updated.stdout, /^ {2}greeting: updated$/m);
      const watched = await ok(['deployment', 'watch', deploymentId, '--until-done']);
      assert.match(watched.stdout, /^\S+Z {2}DEPLOYED\s.*app=STARTED/m);
    });

    it('deletes it and waits until it is gone', async () => {
      const deleted = await ok(['deployment', 'delete', deploymentId, '--wait']);
      assert.equal(deleted.stdout, `deployment ${deploymentId} DELETED\n`);
      const gone = await run(['-o', 'json', 'deployment', 'get', deploymentId]);
      assert.ok(
        (gone.code === 1 && /NOT_FOUND/.test(gone.stderr)) || JSON.parse(gone.stdout).state === 'DELETED',
        gone.stdout + gone.stderr,
      );
    });

    it('exits 1 with the reason when a deployment fails (an untrusted image)', async () => {
      writeFileSync(
        join(dir, 'untrusted.yaml'),
        readFileSync(join(dir, 'app.yaml'), 'utf8').replace('lapis/busybox:1.36', 'lapis/not-in-the-catalogue:1'),
      );
      const created = await run(['deployment', 'create', 'untrusted.yaml', '--wait', '--wait-timeout', '120']);
      assert.equal(created.code, 1, created.stdout + created.stderr);
      noStackTrace(created.stderr);
      const id = /^ID:\s+(\S+)$/m.exec(created.stdout)?.[1];
      if (id) {
        // The orchestrator took it and the deployment failed: the state and its reason are shown.
        assert.match(created.stdout, /^State:\s+FAILED \(.+\)$/m);
        assert.match(created.stderr, new RegExp(`^error: deployment ${id} FAILED: .+`, 'm'));
        await ok(['deployment', 'delete', id]);
      } else {
        // Or it refused the template at once: one error line with the reason.
        assert.match(created.stderr, /^error: .+ \([A-Z_]+(, [A-Z_]+)?\)$/m);
      }
    });
  });
});
