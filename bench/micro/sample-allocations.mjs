// Sample what a running process allocates, collected objects included: start it with
// `node --inspect=127.0.0.1:PORT …`, load it, then `node bench/micro/sample-allocations.mjs PORT SECONDS`.
import WebSocket from 'ws';
const [port, seconds] = process.argv.slice(2);
const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const ws = new WebSocket(list[0].webSocketDebuggerUrl);
await new Promise((r) => ws.once('open', r));
let id = 0; const pending = new Map();
ws.on('message', (m) => { const d = JSON.parse(m); if (d.id && pending.has(d.id)) { pending.get(d.id)(d); pending.delete(d.id); } });
const call = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
await call('HeapProfiler.enable');
console.log(JSON.stringify((await call('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })).error ?? 'started'));
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const res = await call('HeapProfiler.stopSampling');
const prof = res.result.profile;
const self = new Map(); let total = 0;
const walk = (n, path) => { const cf = n.callFrame; const key = `${cf.functionName || '(anon)'} ${cf.url.replace(/.*node_modules\//,'nm/').replace(/.*dist\//,'dist/')}:${cf.lineNumber}`; total += n.selfSize; self.set(key, (self.get(key) || 0) + n.selfSize); for (const c of n.children || []) walk(c); };
walk(prof.head);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log((v / total * 100).toFixed(1).padStart(5) + '%', k);
ws.close();
