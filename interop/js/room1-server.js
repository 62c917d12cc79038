#!/usr/bin/env node
'use strict'
// Cask interop harness (interop/js): a rooms 1.0 server for the rooms tests
// (Cask's rooms client is later work; start it from Go with
// internal/interop.Start(kit, "room1-server.js", ...)). Used by roomtest.js.
//
// Rooms 1.0 server (the tunnel server of the npm package ssb-room 1.3.0),
// without its web UI, on loopback. There is no JS rooms 2.0 server on npm; the
// reference rooms 2.0 server is go-ssb-room (Go).
//   node room1-server.js --path DIR [--port N] [--host 127.0.0.1] [--seed STR] [--name NAME] [--caps B64]
// Prints JSON lines: ready {id,address}, connected/disconnected {peer}, stopped.
const fs = require('fs')
const path = require('path')
const net = require('net')
const readline = require('readline')
const { parseArgs, loadOrCreateKeys, msAddress, MAIN_CAPS } = require('./lib/common')

const { flags: args } = parseArgs(process.argv.slice(2), { booleans: ['verbose'] })
if (!args.path) {
  process.stderr.write('usage: node room1-server.js --path DIR [--port N] [--host H] [--seed STR] [--name NAME] [--caps B64] [--keys FILE] [--stdin auto|on|off]\n')
  process.exit(2)
}
const emit = (event, o) => process.stdout.write(JSON.stringify(Object.assign({ event, t: Date.now() }, o)) + '\n')
if (!args.verbose) console.log = console.info = console.warn = console.error = (...a) => process.stderr.write(a.join(' ') + '\n')

const dir = path.resolve(args.path)
fs.mkdirSync(dir, { recursive: true })
const { keys } = loadOrCreateKeys(args.keys ? path.resolve(args.keys) : path.join(dir, 'secret'), args.seed)
const host = args.host || '127.0.0.1'
// ssb-room answers tunnel.isRoom with {name, description} from DIR/roomcfg
fs.writeFileSync(path.join(dir, 'roomcfg'), JSON.stringify({ name: args.name || 'interop room', description: 'rooms 1.0 test server' }))

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, host, () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

;(async () => {
  const port = args.port && Number(args.port) ? Number(args.port) : await freePort()
  const sbot = require('secret-stack')({ caps: { shs: args.caps || MAIN_CAPS.shs } })
    .use(require('ssb-conn'))
    .use(require('ssb-room/tunnel/server'))
    .use(require('ssb-room/ssb-shims'))({
      path: dir,
      keys,
      host,
      port,
      timers: { handshake: 15e3, inactivity: 600e3 },
      conn: { autostart: false },
      connections: {
        incoming: { net: [{ scope: ['device', 'local', 'public'], transform: 'shs', host, port }] },
        outgoing: { net: [{ transform: 'shs' }] },
      },
    })
  sbot.on('rpc:connect', (rpc, isClient) => {
    emit('connected', { peer: rpc.id, direction: isClient ? 'out' : 'in' })
    rpc.once('closed', () => emit('disconnected', { peer: rpc.id }))
  })
  let closing = false
  const stop = (reason) => {
    if (closing) return
    closing = true
    setTimeout(() => { emit('stopped', { reason, forced: true }); process.exit(0) }, 2000).unref()
    sbot.close(true, () => { emit('stopped', { reason }); process.exit(0) })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  sbot.once('multiserver:listening', () => {
    emit('ready', { id: sbot.id, address: msAddress(host, port, sbot.id), host, port, rooms: '1.0', pid: process.pid })
    const mode = args.stdin || 'auto'
    let watch = mode === 'on'
    if (mode === 'auto') { try { const st = fs.fstatSync(0); watch = st.isFIFO() || st.isSocket() || process.stdin.isTTY === true } catch (_) {} }
    if (watch) readline.createInterface({ input: process.stdin }).on('close', () => stop('stdin closed'))
  })
})().catch((err) => { emit('error', { where: 'startup', message: err.message }); process.exit(1) })
