// A small template for what the example cannot show on one 2-core node: a node that scales
// with the input `count`. The kubernetes backend requests for an instance's pod what the
// instance is given (the example's 1 CPU each: a second would not fit beside the first and the
// services), so the workers take the smallest flavor, m1.tiny (0.5 CPU): three fit the node
// once the example is gone.
import type { Deployment } from '@lapis/proto/lapis/tosca/v1/tosca';

export const WORKERS_FILE = 'workers.yaml';

export const WORKERS_TEMPLATE = `tosca_definitions_version: tosca_simple_yaml_1_3

imports:
  - https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml

topology_template:
  inputs:
    count: { type: integer, default: 1, constraints: [ { in_range: [ 0, 4 ] } ] }

  node_templates:
    worker:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host:
          properties: { instance_type: m1.tiny }
        scalable:
          properties: { count: { get_input: count } }
        os:
          properties: { image: "lapis/httpd:1.36" }
`;

/** The worker node's instances, sorted. */
export function workerIds(deployment: Deployment): string[] {
  return [...(deployment.nodes.find((n) => n.name === 'worker')?.instanceIds ?? [])].sort();
}
