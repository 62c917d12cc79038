'use strict'
// Cask interop harness (interop/js): argument parsing, key files and
// multiserver addresses shared by the scripts of this folder.
//
// Shared helpers for peer.js and query.js.
const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const ssbKeys = require('ssb-keys')

// Parse argv into {flags, positional}. Repeatable flags become arrays.
// Supports --flag value, --flag=value and boolean --flag / --no-flag.
function parseArgs(argv, { booleans = [], repeatable = [] } = {}) {
  const flags = {}
  const positional = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') { positional.push(...argv.slice(i + 1)); break }
    if (!a.startsWith('--')) { positional.push(a); continue }
    let name = a.slice(2)
    let value
    const eq = name.indexOf('=')
    if (eq !== -1) { value = name.slice(eq + 1); name = name.slice(0, eq) }
    if (booleans.includes(name)) {
      if (value === undefined) value = true
      else value = !['false', '0', 'no', 'off'].includes(String(value).toLowerCase())
    } else if (name.startsWith('no-') && booleans.includes(name.slice(3))) {
      name = name.slice(3)
      value = false
    } else if (value === undefined) {
      if (i + 1 >= argv.length) throw new Error('flag --' + name + ' needs a value')
      value = argv[++i]
    }
    if (repeatable.includes(name)) {
      flags[name] = flags[name] || []
      flags[name].push(value)
    } else {
      flags[name] = value
    }
  }
  return { flags, positional }
}

// Same text layout as ssb-keys writes (JSON between comment lines).
function keyFileText(keys) {
  return `# WARNING: Never show this to anyone.
# WARNING: Never edit it or use it on multiple devices at once.
#
# This is your SECRET, it gives you magical powers. With your secret you can
# sign your messages so that your friends can verify that the messages came
# from you. If anyone learns your secret, they can use it to impersonate you.
#
# If you use this secret on more than one device you will create a fork and
# your friends will stop replicating your content.
#
${JSON.stringify(keys, null, 2)}
#
# The only part of this file that's safe to share is your public name:
#
#   ${keys.id}`
}

// Deterministic ed25519 keys from a seed string (sha256 of the string is the
// 32-byte ed25519 seed).
function keysFromSeed(seed) {
  const buf = crypto.createHash('sha256').update(String(seed)).digest()
  return ssbKeys.generate('ed25519', buf)
}

// Load an ssb secret file, or create it (optionally from a seed).
function loadOrCreateKeys(file, seed) {
  if (fs.existsSync(file)) return { keys: ssbKeys.loadSync(file), created: false }
  const keys = seed !== undefined ? keysFromSeed(seed) : ssbKeys.generate('ed25519')
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, keyFileText(keys), { mode: 0o600, flag: 'wx' })
  return { keys, created: true }
}

// "@abc=.ed25519" -> "abc="
function shsKey(feedId) {
  return feedId.replace(/^@/, '').replace(/\.ed25519$/, '')
}

function msAddress(host, port, feedId) {
  return `net:${host}:${port}~shs:${shsKey(feedId)}`
}

// ssb-caps main network values
const MAIN_CAPS = require('ssb-caps')

module.exports = { parseArgs, keyFileText, keysFromSeed, loadOrCreateKeys, shsKey, msAddress, MAIN_CAPS }
