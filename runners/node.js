// coderun's Node runner for pooled boxes, loaded with `--require` before the main module:
// node starts ahead of time with `--enable-source-maps --require <this> main.js`, and this
// preload blocks on fd 3 until a request hands it the program. It writes the files to /work,
// appends the arguments to process.argv and removes itself from process.execArgv (so workers
// and forked children start like a fresh node); then node goes on exactly as
// `node main.js ARGS` does (main.js is resolved only now), so stack traces and require.main
// are those of a fresh run.
'use strict';
const fs = require('fs');
const path = require('path');
const { isMainThread } = require('worker_threads');

if (isMainThread) {
  const at = process.execArgv.indexOf('--require');
  if (at >= 0 && process.execArgv[at + 1] === __filename) {
    process.execArgv.splice(at, 2);
  }
  // Ahead of time, the modules node loads when a program first touches process.stdout or
  // process.stderr (a pipe is a net.Socket). Not the streams themselves: creating one opens
  // an extra fd, which a fresh run does not have before that first touch.
  require('net');
  require('tty');
  const msg = JSON.parse(fs.readFileSync(3, 'utf8'));
  fs.closeSync(3); // the program sees only 0-2
  for (const f of msg.files) {
    const p = path.join('/work', f.path);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, f.content, { flag: 'wx', mode: f.executable ? 0o755 : 0o644 });
  }
  // process.argv is exact. (/proc/<pid>/cmdline keeps node's own start-up command line:
  // node can only rewrite it NUL-padded, which programs reading it would see.)
  process.argv.push(...msg.args);
}
