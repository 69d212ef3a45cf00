/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // Only the project's folders: .stack/ holds Docker data roots that must never be crawled.
  roots: ['<rootDir>/test', '<rootDir>/domain', '<rootDir>/api', '<rootDir>/lib', '<rootDir>/activities', '<rootDir>/workflows', '<rootDir>/workers'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  testMatch: ['<rootDir>/test/**/*.test.ts', '<rootDir>/{domain,lib,api,activities,workflows,workers}/**/*.test.ts'],
  setupFiles: ['<rootDir>/test/setup-env.ts'],
  testTimeout: 120_000,
  // Integration tests share real engines and one Temporal server; two workers keep a 2-core machine responsive.
  maxWorkers: 2,
  // A suite that leaves a native Temporal runtime or a socket behind must not keep CI waiting.
  forceExit: true,
};
