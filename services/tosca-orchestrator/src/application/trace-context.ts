// The trace a deployment's work belongs to: the W3C context of the call that asked for it
// (CreateDeployment, UpdateDeployment, DeleteDeployment), kept on the record so the lifecycle
// operations' spans join that trace even when they run after a restart.
import { context, propagation } from '@opentelemetry/api';

export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}
