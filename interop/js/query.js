#!/usr/bin/env node
'use strict'
// Cask interop harness (interop/js): one-shot queries against a JS peer's data
// directory or, with --remote, against any SSB node over the network. The Go
// tests run it through internal/interop.Query and internal/interop.Node, e.g.
// `query.js dump --feed ID --remote ADDR` to read a feed from the Cask daemon
// with the JS client stack. Output: JSON lines on stdout; exit 0 on success.
//
// One-shot queries. Output: JSON lines on stdout. Exit code 0 on success.
const fs = require('fs')
const path = require('path')
const pull = require('pull-stream')
const ssbKeys = require('ssb-keys')
const { parseArgs, MAIN_CAPS } = require('./lib/common')

const USAGE = `usage:
  node query.js whoami  (--keys FILE | --path DIR)
  node query.js latest  --feed ID (--path DIR | --remote ADDR)
  node query.js dump    --feed ID (--path DIR | --remote ADDR) [--seq N] [--limit N] [--values]
  node query.js clock   (--path DIR | --remote ADDR)
options:
  --path DIR      open the peer's data directory offline (the peer must NOT be running)
  --remote ADDR   connect over the network (net:HOST:PORT~shs:KEY) with a throw-away key,
                  or with --keys FILE; uses createHistoryStream / ebt.clock (both public RPCs)
  --caps B64      secret-handshake app key (default: SSB main net)
  --sign-cap B64  HMAC signing key used by the db (offline mode only)
  --timeout MS    give up after MS (default 30000)
`

let parsed
try {
  parsed = parseArgs(process.argv.slice(2), { booleans: ['values', 'help'] })
} catch (err) {
  process.stderr.write(err.message + '\n' + USAGE)
  process.exit(2)
}
const args = parsed.flags
const cmd = parsed.positional[0]
if (args.help || !cmd) { process.stderr.write(USAGE); process.exit(args.help ? 0 : 2) }

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
function fail(err) {
  process.stderr.write(((err && err.message) || String(err)) + '\n')
  process.exit(1)
}
const timer = setTimeout(() => fail(new Error('timeout')), Number(args.timeout || 30000))
timer.unref()
// library warnings go to stderr
console.log = console.info = console.warn = (...a) => process.stderr.write(a.join(' ') + '\n')

function finish(close) {
  if (close) close(() => process.exit(0))
  else process.exit(0)
  setTimeout(() => process.exit(0), 2000).unref()
}

if (cmd === 'whoami') {
  const file = args.keys || (args.path && path.join(args.path, 'secret'))
  if (!file) fail(new Error('whoami needs --keys or --path'))
  const keys = ssbKeys.loadSync(file)
  out({ id: keys.id })
  process.exit(0)
}

if (!['latest', 'dump', 'clock'].includes(cmd)) { process.stderr.write(USAGE); process.exit(2) }
if (cmd !== 'clock' && !args.feed) fail(new Error(cmd + ' needs --feed'))

const caps = { shs: args.caps || MAIN_CAPS.shs, sign: args['sign-cap'] || MAIN_CAPS.sign || null }

if (args.remote) {
  const keys = args.keys ? ssbKeys.loadSync(args.keys) : ssbKeys.generate()
  const manifest = { createHistoryStream: 'source', ebt: { clock: 'async' } }
  require('ssb-client/client')({ keys, remote: args.remote, config: { caps, timers: { handshake: 15000 } }, manifest }, (err, rpc) => {
    if (err) return fail(err)
    const close = (cb) => rpc.close(true, cb)
    if (cmd === 'clock') {
      return rpc.ebt.clock({ format: 'classic' }, (err, clock) => {
        if (err) return fail(err)
        out({ clock })
        finish(close)
      })
    }
    const opts = { id: args.feed, seq: Number(args.seq || 1), keys: !args.values, live: false }
    if (args.limit) opts.limit = Number(args.limit)
    let last = 0
    pull(
      rpc.createHistoryStream(opts),
      pull.drain((msg) => {
        const v = msg.value || msg
        if (v.sequence > last) last = v.sequence
        if (cmd === 'dump') out(msg)
      }, (err) => {
        if (err && err !== true) return fail(err)
        if (cmd === 'latest') out({ feed: args.feed, seq: last })
        finish(close)
      })
    )
  })
} else if (args.path) {
  const dir = path.resolve(args.path)
  if (!fs.existsSync(path.join(dir, 'db2'))) fail(new Error('no ssb-db2 database in ' + dir))
  const keys = ssbKeys.loadSync(args.keys || path.join(dir, 'secret'))
  const sbot = require('secret-stack')({ caps })
    .use(require('ssb-db2'))
    .use(require('ssb-db2/compat/db'))
    .use(require('ssb-db2/compat/ebt'))
    .use(require('./lib/history-stream'))
    .use(require('ssb-db2/compat/feedstate'))({
      path: dir, keys, caps,
      // offline: listen nowhere
      connections: { incoming: { net: [{ scope: 'device', transform: 'shs', host: '127.0.0.1', port: 0 }] }, outgoing: {} },
    })
  const close = (cb) => sbot.close(true, cb)
  sbot.db.onDrain('base', () => {
    if (cmd === 'clock') {
      return sbot.getVectorClock((err, clock) => {
        if (err) return fail(err)
        out({ clock })
        finish(close)
      })
    }
    if (cmd === 'latest') {
      return sbot.getFeedState(args.feed, (err, st) => {
        if (err) return fail(err)
        out({ feed: args.feed, seq: st.sequence })
        finish(close)
      })
    }
    const opts = { id: args.feed, seq: Number(args.seq || 1), keys: !args.values }
    if (args.limit) opts.limit = Number(args.limit)
    pull(
      sbot.createHistoryStream(opts),
      pull.drain(out, (err) => {
        if (err && err !== true) return fail(err)
        finish(close)
      })
    )
  })
} else {
  fail(new Error(cmd + ' needs --path or --remote'))
}
