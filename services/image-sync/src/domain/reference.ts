// Image references as users write them.

/** A reference as users write it: [host[:port]/]name[:tag][@sha256:...]. */
export function parseReference(reference: string): { host: string; name: string; tag: string; digest: string } {
  let rest = reference.trim();
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag = '';
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  let host = '';
  const first = rest.split('/')[0]!;
  if (rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    rest = rest.slice(first.length + 1);
  }
  if (!tag && !digest) tag = 'latest';
  return { host, name: rest, tag, digest };
}
