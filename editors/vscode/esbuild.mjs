// Bundles the extension (src/extension.ts -> dist/extension.js) or, with --tests, each
// unit test (test/*.test.ts -> out/test/*.test.js) with `vscode` replaced by test/stub/vscode.ts.
//   node esbuild.mjs [--production] [--watch] [--tests]
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');
const tests = process.argv.includes('--tests');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
};

const options = tests
  ? {
      ...common,
      entryPoints: readdirSync('test')
        .filter((f) => f.endsWith('.test.ts'))
        .map((f) => join('test', f)),
      outdir: 'out/test',
      sourcemap: 'inline',
      alias: { vscode: './test/stub/vscode.ts' },
    }
  : {
      ...common,
      entryPoints: ['src/extension.ts'],
      outfile: 'dist/extension.js',
      external: ['vscode'],
      minify: production,
      sourcemap: !production,
      sourcesContent: false,
    };

rmSync(tests ? 'out/test' : 'dist', { recursive: true, force: true });
if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
