export * from './mesh';
export * from './up-config';
