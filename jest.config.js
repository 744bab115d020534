// Jest runs the compiled tests (tsc writes dist/ first; see scripts/run-tests.mjs): the code under
// test is real ESM exactly as users load it, the native addon included, with no transform layer.
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  moduleFileExtensions: ['js', 'mjs', 'json', 'node'],
  transform: {},
  globalSetup: '<rootDir>/dist/test/helpers/global-setup.js',
  globalTeardown: '<rootDir>/dist/test/helpers/global-teardown.js',
  // A guard against hangs only; speed is measured in bench/, never asserted here.
  testTimeout: 120000,
  maxWorkers: 2,
};
