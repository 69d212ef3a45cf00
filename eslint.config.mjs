// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const IO_MODULES = ['dockerode', 'ioredis', 'openai', 'cloudflare', 'pino', 'pg', 'express', '@prisma/*', '@prisma/client', 'node:*',
  'fs', 'fs/promises', 'child_process', 'net', 'http', 'https', 'os', 'path', 'crypto', 'stream', 'dns', 'tls', 'zlib'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'generated/**', 'dist/**', '.stack/**', 'coverage/**', '**/*.cjs', '**/*.mjs', 'jest.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The fleet console runs in the browser as plain ES modules: no type information, browser globals.
    files: ['admin/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { sourceType: 'module', globals: globals.browser, parserOptions: { projectService: false } },
  },
  {
    // Workflow code is replayed: no I/O, no clocks or randomness outside the SDK's, and
    // activities only as types (proxyActivities<typeof ...>).
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: IO_MODULES, message: 'Workflows must stay deterministic: do I/O in activities.' },
          { group: ['../activities', '../activities/*'], allowTypeImports: true, message: 'Import activities as types only.' },
          { group: ['../lib/*', '!../lib/constants'], allowTypeImports: true, message: 'Workflows may import only lib/constants from lib/.' },
        ],
      }],
    },
  },
  {
    // The domain folder is pure: no Temporal, no I/O.
    files: ['domain/**/*.ts'],
    ignores: ['domain/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: [...IO_MODULES, '@temporalio/*'], message: 'domain/ holds pure functions only.' },
      ] }],
    },
  },
);
