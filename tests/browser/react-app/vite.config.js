import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

// `synkro` is the package as built in bindings/wasm/pkg; React comes from
// tests/browser/node_modules (deduplicated, since the package imports it
// from outside this folder).
const pkg = fileURLToPath(new URL('../../../bindings/wasm/pkg/', import.meta.url));
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  logLevel: 'warn',
  resolve: {
    alias: [
      { find: /^synkro\/react$/, replacement: `${pkg}react.js` },
      { find: /^synkro$/, replacement: `${pkg}index.js` },
    ],
    dedupe: ['react', 'react-dom'],
  },
  build: { target: 'es2022', emptyOutDir: true },
});
