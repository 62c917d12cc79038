'use strict'
// Cask interop harness (interop/js): used by bench.js and roomtest.js to
// spawn peer.js / room1-server.js children and wait for their JSON events.
//
// Spawns peer.js / room1-server.js children and waits for their JSON events.
const path = require('path')
const { spawn } = require('child_process')
const readline = require('readline')

function start(script, name, argv, { verbose = false, timeoutMs = 60000 } = {}) {
  const p = spawn(process.execPath, [path.join(__dirname, '..', script), ...argv], { stdio: ['pipe', 'pipe', 'pipe'] })
  const handlers = []
  p.events = []
  readline.createInterface({ input: p.stdout }).on('line', (line) => {
    let ev
    try { ev = JSON.parse(line) } catch (_) { return }
    p.events.push(ev)
    if (verbose && ev.event !== 'progress') process.stderr.write(`[${name}] ${line}\n`)
    for (const h of handlers.slice()) h(ev)
  })
  let errTail = ''
  p.stderr.on('data', (d) => { errTail = (errTail + d).slice(-4000); if (verbose) process.stderr.write(`[${name} stderr] ${d}`) })
  p.errTail = () => errTail
  p.waitFor = (pred, ms = timeoutMs) => new Promise((resolve, reject) => {
    const hit = p.events.find(pred)
    if (hit) return resolve(hit)
    const timer = setTimeout(() => reject(new Error(`${name}: timeout waiting for event; stderr tail: ${errTail}`)), ms)
    const h = (ev) => { if (pred(ev)) { clearTimeout(timer); handlers.splice(handlers.indexOf(h), 1); resolve(ev) } }
    handlers.push(h)
  })
  p.send = (cmd) => p.stdin.write(JSON.stringify(cmd) + '\n')
  p.stop = () => new Promise((resolve) => {
    if (p.exitCode !== null) return resolve()
    p.once('exit', resolve)
    p.stdin.end()
  })
  return p
}

module.exports = { start }
