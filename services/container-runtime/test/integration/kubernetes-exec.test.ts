// ExecInInstance on the Kubernetes backend, against a real one-node cluster (kubelet, containerd:
// testenv's startCluster) and a pod running busybox as the backend makes an instance's pod (its
// container named "instance"): files written through the container's tar, the command run with
// its environment and working directory, its exit status, a bounded output, a timeout, a command
// that does not exist, a pod that does not.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { createLogger } from '@lapis/platform';
import { CLUSTER_IMAGES, kubectl, startCluster, waitPodsReady, type Cluster } from '@lapis/testenv';
import type { ExecRequest } from '../../src/adapters/backend';
import { KubernetesBackend } from '../../src/adapters/kubernetes';
import { OUTPUT_TAIL_BYTES } from '../../src/domain/output-tail';

const namespace = 'lapis-exec-test';
const pod = 'exec-target';

const request = (argv: string[], extra: Partial<ExecRequest> = {}): ExecRequest => ({
  files: [],
  argv,
  environment: {},
  workingDir: '',
  timeoutMs: 60_000,
  ...extra,
});

describe('kubernetes backend: ExecInInstance on a real cluster', function () {
  this.timeout(180_000);
  let cluster: Cluster | undefined;
  let backend: KubernetesBackend;

  before(async function () {
    this.timeout(15 * 60_000);
    cluster = await startCluster({ progress: (line) => console.error(line) });
    await kubectl(['create', 'namespace', namespace], cluster);
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod, namespace },
      spec: {
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'instance', image: CLUSTER_IMAGES.busybox, imagePullPolicy: 'Never', command: ['sleep', '3600'] }],
      },
    };
    await kubectl(['apply', '-f', '-'], cluster, { input: JSON.stringify(manifest) });
    await waitPodsReady(cluster, namespace, { timeoutMs: 120_000 });
    backend = new KubernetesBackend(
      { kubeconfig: cluster.kubeconfig, namespace, tolerateKwok: false },
      'exec-node',
      createLogger('test', 'warn'),
    );
  });

  after(async function () {
    this.timeout(180_000);
    await cluster?.stop();
  });

  it('writes the files (parents made, modes kept), then runs the command with its environment in its working directory', async () => {
    const script = '#!/bin/sh\n. ../lib/common.sh\nsay "$GREETING from $(pwd)"\n';
    const result = await backend.exec(
      pod,
      request(['/opt/lapis/op/scripts/run.sh'], {
        files: [
          { path: '/opt/lapis/op/scripts/run.sh', content: Buffer.from(script), mode: 0o755 },
          { path: '/opt/lapis/op/lib/common.sh', content: Buffer.from('say() { echo "said: $*"; }\n'), mode: 0o644 },
        ],
        environment: { GREETING: 'hello world' },
        workingDir: '/opt/lapis/op/scripts',
      }),
    );
    assert.deepEqual(
      { ...result, outputTail: result.outputTail.toString() },
      { exitCode: 0, outputTail: 'said: hello world from /opt/lapis/op/scripts\n', outputTruncated: false, timedOut: false },
    );
    const modes = await backend.exec(pod, request(['stat', '-c', '%a %n', '/opt/lapis/op/scripts/run.sh', '/opt/lapis/op/lib/common.sh']));
    assert.equal(modes.outputTail.toString(), '755 /opt/lapis/op/scripts/run.sh\n644 /opt/lapis/op/lib/common.sh\n');
  });

  it('answers the exit status, with stdout and stderr in the output', async () => {
    const result = await backend.exec(pod, request(['sh', '-c', 'echo out; echo err >&2; exit 3']));
    assert.equal(result.exitCode, 3);
    assert.match(result.outputTail.toString(), /^(out\nerr\n|err\nout\n)$/);
    assert.equal(result.timedOut, false);
  });

  it('keeps the last 64 KiB of a big output, saying it was cut', async () => {
    const result = await backend.exec(pod, request(['sh', '-c', 'yes 0123456789 | head -c 300000; echo; echo the end']));
    assert.equal(result.exitCode, 0);
    assert.equal(result.outputTail.length, OUTPUT_TAIL_BYTES);
    assert.equal(result.outputTruncated, true);
    assert.match(result.outputTail.toString(), /\nthe end\n$/);
  });

  it('past its timeout answers timed_out (exit -1) with what it wrote so far, and leaves the command to end', async () => {
    const started = Date.now();
    const result = await backend.exec(pod, request(['sh', '-c', 'echo begun; sleep 30'], { timeoutMs: 2000 }));
    assert.ok(Date.now() - started < 10_000, `answered after ${Date.now() - started} ms`);
    assert.equal(result.timedOut, true);
    assert.equal(result.exitCode, -1);
    assert.equal(result.outputTail.toString(), 'begun\n');
  });

  it('a command that does not exist: 127 and why, as a shell says it', async () => {
    const result = await backend.exec(pod, request(['/no/such/command']));
    assert.equal(result.exitCode, 127);
    assert.match(result.outputTail.toString(), /no such file|not found/i);
  });

  it('a pod that is not there: FAILED_PRECONDITION NOT_RUNNING', async () => {
    await assert.rejects(backend.exec('no-such-pod', request(['true'])), (error: { code: number; reason: string; message: string }) => {
      assert.equal(error.code, status.FAILED_PRECONDITION, error.message);
      assert.equal(error.reason, 'NOT_RUNNING');
      return true;
    });
  });
});
