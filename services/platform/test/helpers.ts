// The platform's own tests use the same helpers as every service's tests.
export { natsUrl, sleep, testLog as log, unique, until } from '../src/testing';
