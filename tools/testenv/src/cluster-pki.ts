// The real cluster's certificates, made with openssl: a CA, the API server's serving
// certificate (pods check it against the CA through the `kubernetes` Service, so it names
// 10.0.0.1 and kubernetes.default.svc), and the client certificate the API server shows the
// kubelet (for logs, exec and port-forward).
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { run } from './proc.js';

export interface ClusterPki {
  caFile: string;
  caKey: string;
  certFile: string;
  keyFile: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
}

async function signed(
  openssl: string,
  dir: string,
  name: string,
  subject: string,
  ca: { cert: string; key: string },
  ext: string,
): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const extFile = path.join(dir, `${name}.ext`);
  await fsp.writeFile(extFile, ext);
  await run(openssl, ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', subject]);
  await run(openssl, [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '30',
    '-sha256',
    '-extfile',
    extFile,
  ]);
  return { cert, key };
}

/** Writes the PKI into dir; `ips` and `names` go into the API server certificate. */
export async function makeClusterPki(openssl: string, dir: string, ips: string[], names: string[]): Promise<ClusterPki> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = { cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
  await run(openssl, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    ca.key,
    '-out',
    ca.cert,
    '-days',
    '30',
    '-subj',
    '/CN=lapis-test-cluster-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const san = [...ips.map((ip) => `IP:${ip}`), ...names.map((n) => `DNS:${n}`)].join(',');
  const server = await signed(
    openssl,
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    ca,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  const client = await signed(
    openssl,
    dir,
    'apiserver-kubelet-client',
    '/O=system:masters/CN=kube-apiserver-kubelet-client',
    ca,
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
  );
  return {
    caFile: ca.cert,
    caKey: ca.key,
    certFile: server.cert,
    keyFile: server.key,
    kubeletClientCert: client.cert,
    kubeletClientKey: client.key,
  };
}
