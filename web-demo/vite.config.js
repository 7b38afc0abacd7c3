import { defineConfig } from 'vite';

// The synkro package loads its .wasm with `new URL(..., import.meta.url)`,
// which Vite turns into a hashed asset at build time. In the dev server it
// must not be pre-bundled (that would break the URL), and it is a symlink
// to ../bindings/wasm/pkg, outside this folder.
export default defineConfig({
  optimizeDeps: { exclude: ['synkro'] },
  server: { fs: { allow: ['..'] } },
  build: { target: 'es2022', sourcemap: true },
});
