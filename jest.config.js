/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  testMatch: ['<rootDir>/test/**/*.test.ts', '<rootDir>/{domain,lib,api,activities,workflows,workers}/**/*.test.ts'],
  setupFiles: ['<rootDir>/test/setup-env.ts'],
  setupFilesAfterEnv: ['<rootDir>/test/setup-runtime.ts'],
  testTimeout: 120_000,
  // Integration tests share real engines and one Temporal server; two workers keep a 2-core machine responsive.
  maxWorkers: 2,
};
