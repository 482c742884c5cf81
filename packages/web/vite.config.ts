import { defineConfig } from 'vite';

// React's JSX is compiled by esbuild (built into Vite); no framework plugin is needed for a
// production build, and the newest @vitejs/plugin-react requires Vite 8, which the rest of the
// toolchain (Vitest 3) does not use yet.
export default defineConfig({
  esbuild: { jsx: 'automatic' },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022' },
  server: { proxy: { '/api': 'http://127.0.0.1:9991', '/avatar': 'http://127.0.0.1:9991' } },
});
