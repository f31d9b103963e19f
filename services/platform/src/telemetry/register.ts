// Loaded with `node -r @lapis/platform/register` before the service itself, so the gRPC
// instrumentation patches @grpc/grpc-js before anything requires it.
import { startTelemetry } from './sdk';

startTelemetry();
