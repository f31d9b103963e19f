// Metadata headers Lapis defines, shared by the server (auth.ts reads them) and the clients
// (grpc/client.ts sets them), in a module of their own so a client needs nothing of auth.
/** The project a caller in several projects acts in. */
export const PROJECT_HEADER = 'x-lapis-project';
