#!/usr/bin/env node
'use strict'
// Cask interop harness (interop/js): a full JavaScript SSB peer (ssb-db2,
// ssb-ebt or ssb-replicate, ssb-blobs, ssb-conn, ssb-room-client) that the Go
// tests start as a child process through internal/interop.StartPeer and
// internal/interop.Start (sbot, muxrpc, secretstream interop tests and
// bench/jsratio). It listens on 127.0.0.1 only, prints one JSON event per
// line on stdout and reads JSON commands on stdin; see README.md.
//
// JS reference SSB peer for interop tests. Prints one JSON object per line on
// stdout (events), reads JSON commands from stdin. See README.md.
const fs = require('fs')
const path = require('path')
const net = require('net')
const readline = require('readline')
const pull = require('pull-stream')
const Ref = require('ssb-ref')
const { parseArgs, loadOrCreateKeys, shsKey, msAddress, MAIN_CAPS } = require('./lib/common')

const USAGE = `usage: node peer.js --path DIR [options]
  --path DIR              data directory (created if missing)            [required]
  --keys FILE             ssb secret file (default DIR/secret; created if missing)
  --seed STR              derive the keypair from STR when the secret file is created
  --host HOST             listen host (default 127.0.0.1)
  --port N                listen port (default 0 = pick a free port)
  --ws-port N             also accept peers over WebSocket on HOST:N (multiserver ws plugin; 0 = a free port);
                          without it only ws:// dialling is enabled
  --caps B64              secret-handshake app key (default: SSB main net)
  --sign-cap B64          HMAC key for message signing (default: none, main net)
  --replication MODE      ebt (default) | legacy | none
  --publish N             publish N messages of type post after start
  --type T                message type for --publish (default post)
  --follow ID             publish a contact (follow) for ID and replicate it; repeatable
  --replicate ID          replicate ID without publishing a follow; repeatable
  --connect ADDR          connect to a multiserver address after start; repeatable
  --room ADDR             connect to a rooms server (1.0 or 2.0) and join it; repeatable
  --tunnel ID             open a tunnel via the (first) room to attendant ID; repeatable
  --tunnel-timeout MS     give up on a tunnel after MS (default 30000)
  --hops N                ssb-friends hops (default 1)
  --conn-scheduler        enable the ssb-conn scheduler (default off: only explicit connects)
  --progress-ms MS        coalesce "progress" events per feed every MS (default 200; 0 = every message)
  --stdin MODE            auto (default) | on | off   watch stdin for commands, stop on EOF
  --trace                 emit an "rpc_in" event for every incoming muxrpc call
  --verbose               keep library logging on stderr
`

let args
try {
  args = parseArgs(process.argv.slice(2), {
    booleans: ['conn-scheduler', 'verbose', 'help', 'trace'],
    repeatable: ['follow', 'replicate', 'connect', 'room', 'tunnel'],
  }).flags
} catch (err) {
  process.stderr.write(err.message + '\n' + USAGE)
  process.exit(2)
}
if (args.help || !args.path) {
  process.stderr.write(USAGE)
  process.exit(args.help ? 0 : 2)
}

// ---------------------------------------------------------------- output
function emit(event, fields) {
  const obj = Object.assign({ event, t: Date.now() }, fields)
  process.stdout.write(JSON.stringify(obj) + '\n')
}
function emitError(where, err) {
  emit('error', { where, message: (err && err.message) || String(err) })
}
if (!args.verbose) {
  // Libraries print warnings with console.*; keep stdout clean JSON.
  console.log = console.info = console.warn = console.error = (...a) => {
    process.stderr.write(a.map((x) => (x && x.stack) || (typeof x === 'string' ? x : JSON.stringify(x))).join(' ') + '\n')
  }
} else {
  console.log = console.info = (...a) => process.stderr.write(a.join(' ') + '\n')
}
process.on('uncaughtException', (err) => {
  emitError('uncaughtException', err)
  process.stderr.write(String(err && err.stack) + '\n')
})

// --trace: report every incoming muxrpc call (patches muxrpc's local call
// dispatcher before secret-stack loads it).
if (args.trace) {
  const laPath = require.resolve('muxrpc/local-api')
  const createLocalCall = require(laPath)
  require.cache[laPath].exports = function tracedCreateLocalCall(...a) {
    const call = createLocalCall(...a)
    return function tracedLocalCall(type, name, callArgs) {
      const shown = (callArgs || []).filter((x) => typeof x !== 'function')
      let argsJson
      try { argsJson = JSON.parse(JSON.stringify(shown).slice(0, 2000)) } catch (_) { argsJson = '(unserializable)' }
      emit('rpc_in', { peer: this && this.id, type, name: [].concat(name).join('.'), args: argsJson })
      return call.call(this, type, name, callArgs)
    }
  }
}

// ---------------------------------------------------------------- config
const dir = path.resolve(args.path)
fs.mkdirSync(dir, { recursive: true })
const keyFile = args.keys ? path.resolve(args.keys) : path.join(dir, 'secret')
const { keys, created } = loadOrCreateKeys(keyFile, args.seed)
const host = args.host || '127.0.0.1'
const mode = args.replication || 'ebt'
if (!['ebt', 'legacy', 'none'].includes(mode)) {
  process.stderr.write('--replication must be ebt, legacy or none\n')
  process.exit(2)
}
const progressMs = args['progress-ms'] !== undefined ? Number(args['progress-ms']) : 200
const hops = args.hops !== undefined ? Number(args.hops) : 1
const tunnelTimeout = args['tunnel-timeout'] !== undefined ? Number(args['tunnel-timeout']) : 30000
const wsWanted = args['ws-port'] !== undefined

function freePort(h) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, h, () => {
      const p = srv.address().port
      srv.close(() => resolve(p))
    })
  })
}

async function main() {
  const port = args.port && Number(args.port) !== 0 ? Number(args.port) : await freePort(host)
  // multiserver's ws plugin picks a random port when given none; choose a
  // free one ourselves so the ready event can report it.
  const wsPort = !wsWanted ? 0 : Number(args['ws-port']) !== 0 ? Number(args['ws-port']) : await freePort(host)
  const incoming = {
    net: [{ scope: ['device', 'local', 'public'], transform: 'shs', host, port }],
    tunnel: [{ scope: 'public', transform: 'shs' }],
  }
  if (wsWanted) incoming.ws = [{ scope: ['device', 'local', 'public'], transform: 'shs', host, port: wsPort }]
  const config = {
    path: dir,
    keys,
    caps: {
      shs: args.caps || MAIN_CAPS.shs,
      sign: args['sign-cap'] || MAIN_CAPS.sign || null,
    },
    host,
    port,
    timers: { handshake: 15e3, inactivity: 600e3 },
    connections: {
      incoming,
      outgoing: {
        net: [{ transform: 'shs' }],
        ws: [{ transform: 'shs' }],
        tunnel: [{ transform: 'shs' }],
      },
    },
    conn: { autostart: !!args['conn-scheduler'], populatePubs: false },
    friends: { hops, hookAuth: false },
    replicationScheduler: { autostart: true, partialReplication: null },
    replicate: { legacy: true },
    db2: {},
    blobs: { sympathy: 0, max: 64 * 1024 * 1024 },
  }

  // The WebSocket transport (multiserver's ws plugin over pull-websocket):
  // secret-stack registers only net and shs by itself.
  const wsTransport = {
    name: 'multiserver-ws',
    version: '1.0.0',
    init(api) {
      api.multiserver.transport({ name: 'ws', create: (opts) => require('multiserver/plugins/ws')(opts) })
    },
  }
  let stack = require('secret-stack')()
    .use(wsTransport)
    .use(require('ssb-db2'))
    .use(require('ssb-db2/compat/db'))
    .use(require('ssb-db2/compat/ebt'))
    .use(require('./lib/history-stream'))
    .use(require('ssb-db2/compat/log-stream'))
    .use(require('ssb-db2/compat/feedstate'))
    .use(require('ssb-db2/compat/publish'))
    .use(require('ssb-db2/compat/post'))
    .use(require('ssb-conn'))
    .use(require('ssb-friends'))
  if (mode === 'ebt') {
    stack = stack.use(require('ssb-ebt')).use(require('ssb-replication-scheduler'))
  } else if (mode === 'legacy') {
    stack = stack.use(require('ssb-replicate'))
  }
  stack = stack.use(require('ssb-blobs')).use(require('ssb-room-client'))

  // ssb-db2's compat createWriteStream (used by ssb-replicate for legacy
  // replication) waits for each add() callback, and each add() waits for
  // ssb-db2's 250 ms batch debounce: ~3 msgs/s. Add without waiting instead;
  // ssb-db2 queues per feed, batches and validates in order.
  stack = stack.use({
    name: 'interopWriteStream',
    init(sbot) {
      sbot.createWriteStream = function createWriteStream(cb) {
        let firstErr = null
        return pull.drain(
          (msg) => sbot.db.add(msg, (err) => {
            if (err && !firstErr) { firstErr = err; emitError('add', err) }
          }),
          (err) => cb && cb(err || null)
        )
      }
      return {}
    },
  })

  // Give our own key (e.g. query.js --remote with the same secret) full access.
  stack = stack.use({
    name: 'interopMaster',
    init(sbot) {
      sbot.auth.hook(function (fn, a) {
        const [id, cb] = a
        if (id === sbot.id) cb(null, { allow: null, deny: null })
        else fn.apply(this, a)
      })
      return {}
    },
  })

  const sbot = stack(config)
  const self = sbot.id
  const address = msAddress(host, port, self)
  const wsAddress = wsWanted ? `ws://${host}:${wsPort}~shs:${shsKey(self)}` : undefined

  // ------------------------------------------------------------ replication
  const wanted = new Set()
  function replicateFeed(id) {
    if (!Ref.isFeed(id)) return emitError('replicate', new Error('not a feed id: ' + id))
    wanted.add(id)
    if (mode === 'ebt') sbot.ebt.request(id, true)
    else if (mode === 'legacy') sbot.replicate.request(id, true)
  }
  if (mode === 'legacy') sbot.replicate.request(self, true)
  if (mode === 'ebt') sbot.ebt.request(self, true)

  // progress events (coalesced)
  const latestSeen = new Map()
  const dirty = new Set()
  function flushProgress() {
    for (const feed of dirty) emit('progress', { feed, seq: latestSeen.get(feed) })
    dirty.clear()
  }
  let progressTimer = null
  if (progressMs > 0) progressTimer = setInterval(flushProgress, progressMs)
  sbot.db.onMsgAdded((ev) => {
    const v = ev.kvt && ev.kvt.value
    if (!v || v.author === self) return
    const prev = latestSeen.get(v.author) || 0
    if (v.sequence > prev) latestSeen.set(v.author, v.sequence)
    if (progressMs > 0) dirty.add(v.author)
    else emit('progress', { feed: v.author, seq: v.sequence })
  })

  // ------------------------------------------------------------ connections
  sbot.on('rpc:connect', (rpc, isClient) => {
    if (rpc.id === self) return
    let addr = rpc.stream && rpc.stream.address
    // outgoing tunnels have no stringified address ("undefined~shs:KEY")
    const viaTunnel = typeof addr === 'string' && (addr.startsWith('tunnel:') || addr.startsWith('undefined'))
    if (typeof addr === 'string' && addr.startsWith('undefined')) addr = undefined
    emit(viaTunnel ? 'tunnel' : 'connected', {
      peer: rpc.id,
      direction: isClient ? 'out' : 'in',
      address: typeof addr === 'string' ? addr : undefined,
    })
    rpc.once('closed', () => emit('disconnected', { peer: rpc.id }))
  })

  function connect(addr, data, cb) {
    sbot.conn.connect(addr, data || {}, (err, rpc) => {
      if (err) emitError('connect ' + addr, err)
      cb && cb(err, rpc)
    })
  }

  // rooms: report room detection and attendants
  const rooms = sbot.tunnel.getRoomsMap()
  const reportedRooms = new Set()
  const roomTimer = setInterval(() => {
    for (const [key, obs] of rooms) {
      if (reportedRooms.has(key)) continue
      reportedRooms.add(key)
      const md = obs.roomMetadata || {}
      emit('room', { room: key, address: obs.address, name: md.name, features: md.features, room1: !!md._isRoom1 })
    }
    for (const key of reportedRooms) if (!rooms.has(key)) reportedRooms.delete(key)
  }, 100)
  pull(
    sbot.roomClient.discoveredAttendants(),
    pull.drain((a) => emit('attendant', { room: a.room, key: a.key, address: a.address }), () => {})
  )

  function firstRoomKey() {
    for (const key of rooms.keys()) return key
    return null
  }
  function openTunnel(target, roomKey, cb) {
    const deadline = Date.now() + tunnelTimeout
    let lastErr = null
    const tryOnce = () => {
      if (closing) return
      const portal = roomKey || firstRoomKey()
      if (!portal) return retry(new Error('not joined to any room yet'))
      const addr = `tunnel:${portal}:${target}~shs:${shsKey(target)}`
      sbot.conn.connect(addr, { type: 'room-attendant', room: portal }, (err, rpc) => {
        if (err || !rpc) return retry(err || new Error('no rpc'))
        emit('tunnel_opened', { room: portal, target, address: addr })
        cb && cb(null, rpc)
      })
    }
    const retry = (err) => {
      lastErr = err
      if (Date.now() > deadline) {
        emitError('tunnel ' + target, lastErr)
        return cb && cb(lastErr)
      }
      setTimeout(tryOnce, 500)
    }
    tryOnce()
  }

  // ------------------------------------------------------------ actions
  let pubCounter = 0
  function publish(n, type, cb) {
    const started = Date.now()
    let i = 0
    let last = null
    const next = () => {
      if (i >= n) {
        emit('published', { count: n, seq: last ? last.value.sequence : undefined, key: last ? last.key : undefined, elapsed_ms: Date.now() - started })
        return cb && cb(null, last)
      }
      i++
      pubCounter++
      const content = { type, text: `interop message ${pubCounter} from ${args.seed || 'peer'}`, n: pubCounter }
      sbot.db.create({ content, feedFormat: 'classic', encoding: 'js' }, (err, msg) => {
        if (err) { emitError('publish', err); return cb && cb(err) }
        last = msg
        next()
      })
    }
    next()
  }

  function follow(id, cb) {
    if (!Ref.isFeed(id)) { emitError('follow', new Error('not a feed id: ' + id)); return cb && cb() }
    sbot.friends.follow(id, { state: true }, (err, msg) => {
      if (err) emitError('follow', err)
      else emit('followed', { feed: id, key: msg && msg.key })
      replicateFeed(id)
      cb && cb(err)
    })
  }

  function latest(id, cb) {
    sbot.getFeedState(id, (err, st) => cb(err, st ? st.sequence : 0))
  }

  function handleCommand(cmd) {
    const c = cmd.cmd
    const done = (err) => { if (err) emitError(c, err) }
    switch (c) {
      case 'publish': return publish(Number(cmd.n || 1), cmd.type || 'post', () => {})
      case 'publish_content':
        return sbot.db.create({ content: cmd.content, feedFormat: 'classic', encoding: 'js' }, (err, msg) => {
          if (err) return emitError(c, err)
          emit('published', { count: 1, seq: msg.value.sequence, key: msg.key })
        })
      case 'publish_private':
        // box1 (ssb-db2's built-in ssb-box) to content.recps
        return sbot.db.create({ content: cmd.content, encryptionFormat: 'box', feedFormat: 'classic', encoding: 'js' }, (err, msg) => {
          if (err) return emitError(c, err)
          emit('published', { count: 1, seq: msg.value.sequence, key: msg.key })
        })
      case 'get_msg':
        // the message as ssb-db2 reads it: decrypted when our key opens it
        return sbot.db.getMsg(cmd.key, (err, msg) => err ? emitError(c, err) : emit('msg', { key: cmd.key, value: msg.value, meta: msg.meta || null }))
      case 'follow': return follow(cmd.id)
      case 'replicate': return replicateFeed(cmd.id)
      case 'connect': return connect(cmd.address, { type: cmd.type })
      case 'disconnect': return sbot.conn.disconnect(cmd.address, done)
      case 'room': return connect(cmd.address, { type: 'room' })
      case 'tunnel': return openTunnel(cmd.target, cmd.room)
      case 'latest':
        return latest(cmd.id || self, (err, seq) => err ? emitError(c, err) : emit('latest', { feed: cmd.id || self, seq }))
      case 'clock':
        return sbot.getVectorClock((err, clock) => err ? emitError(c, err) : emit('clock', { clock }))
      case 'peers':
        return emit('peers', { peers: Object.keys(sbot.peers).filter((k) => sbot.peers[k].length > 0) })
      case 'blob_add':
        return pull(
          pull.values([Buffer.from(cmd.data_b64 || '', 'base64')]),
          sbot.blobs.add((err, id) => err ? emitError(c, err) : emit('blob_added', { id }))
        )
      case 'blob_want':
        return sbot.blobs.want(cmd.id, (err, has) => err ? emitError(c, err) : emit('blob_has', { id: cmd.id, has }))
      case 'blob_get':
        return pull(sbot.blobs.get(cmd.id), pull.collect((err, bufs) =>
          err ? emitError(c, err) : emit('blob', { id: cmd.id, data_b64: Buffer.concat(bufs).toString('base64') })))
      case 'stop': return stop('command')
      default: emitError('command', new Error('unknown cmd: ' + JSON.stringify(c)))
    }
  }

  // ------------------------------------------------------------ shutdown
  let closing = false
  function stop(reason) {
    if (closing) return
    closing = true
    clearInterval(roomTimer)
    if (progressTimer) { clearInterval(progressTimer); flushProgress() }
    const force = setTimeout(() => { emit('stopped', { reason, forced: true }); process.exit(0) }, 3000)
    sbot.close(true, () => {
      clearTimeout(force)
      emit('stopped', { reason })
      process.exit(0)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  const stdinMode = args.stdin || 'auto'
  let watchStdin = stdinMode === 'on'
  if (stdinMode === 'auto') {
    try {
      const st = fs.fstatSync(0)
      watchStdin = st.isFIFO() || st.isSocket() || process.stdin.isTTY === true
    } catch (_) { watchStdin = false }
  }

  // ------------------------------------------------------------ start
  // wait until the server is listening and the db has loaded state
  await new Promise((resolve) => {
    let listening = false
    let feedsReady = false
    const check = () => { if (listening && feedsReady) resolve() }
    sbot.once('multiserver:listening', () => { listening = true; check() })
    sbot.db.onDrain('base', () => { feedsReady = true; check() })
  })
  // ssb-replicate and ssb-ebt load their vector clock with sbot.getVectorClock at
  // init and *replace* their state with it when it arrives; anything published
  // before that would be forgotten by ssb-replicate. Wait for the clock first.
  await new Promise((resolve) => sbot.getVectorClock(() => setTimeout(resolve, 50)))
  const mySeq = await new Promise((resolve) => latest(self, (err, seq) => resolve(err ? 0 : seq)))
  emit('ready', { id: self, address, host, port, path: dir, keys: keyFile, keys_created: created, replication: mode, seq: mySeq, pid: process.pid, ws_address: wsAddress, ws_port: wsWanted ? wsPort : undefined })

  if (watchStdin) {
    const rl = readline.createInterface({ input: process.stdin })
    rl.on('line', (line) => {
      line = line.trim()
      if (!line) return
      let cmd
      try { cmd = JSON.parse(line) } catch (err) { return emitError('command', new Error('bad JSON: ' + line)) }
      try { handleCommand(cmd) } catch (err) { emitError('command', err) }
    })
    rl.on('close', () => stop('stdin closed'))
  }

  // startup actions, in order: replicate/follow, publish, connect, rooms, tunnels
  for (const id of args.replicate || []) replicateFeed(id)
  for (const id of args.follow || []) await new Promise((r) => follow(id, r))
  if (args.publish) await new Promise((r) => publish(Number(args.publish), args.type || 'post', r))
  for (const a of args.connect || []) connect(a, {})
  for (const a of args.room || []) connect(a, { type: 'room' })
  for (const t of args.tunnel || []) openTunnel(t, null)
}

main().catch((err) => {
  emitError('startup', err)
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
