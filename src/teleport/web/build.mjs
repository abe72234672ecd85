// Copies the web UI's third-party files (installed by `npm ci` from package-lock.json) into
// static/vendor/, which the proxy serves under /web/vendor/. static/ is git-ignored: it is
// rebuilt by `teleport-web-build` or `npm ci && npm run build` here, and by .ci/run.
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "static", "vendor");
const files = {
  "xterm.js": "node_modules/@xterm/xterm/lib/xterm.js",
  "xterm.css": "node_modules/@xterm/xterm/css/xterm.css",
  "addon-fit.js": "node_modules/@xterm/addon-fit/lib/addon-fit.js",
};
mkdirSync(out, { recursive: true });
for (const [name, from] of Object.entries(files)) {
  const src = join(here, from);
  if (!existsSync(src)) {
    console.error(`missing ${from}: run 'npm ci' in ${here} first`);
    process.exit(1);
  }
  copyFileSync(src, join(out, name));
}
console.log(`web UI vendor files copied to ${out}`);
