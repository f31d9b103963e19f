import type { Topology } from '../model';
import { translateHot } from './hot';
import { translateK8s } from './k8s';
import { translateRadl } from './radl';

export type Target = 'hot' | 'radl' | 'k8s';
export const targets: Target[] = ['hot', 'radl', 'k8s'];

export function translate(topology: Topology, target: Target): string {
  if (target === 'hot') return translateHot(topology);
  if (target === 'radl') return translateRadl(topology);
  return translateK8s(topology);
}
