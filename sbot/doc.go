// Package sbot assembles the daemon: it opens the repo (secret, config,
// store), mounts the list of services of plugins/, listens on TCP with
// the secret handshake and on an owner-only unix socket (one file per
// transport and direction), and owns every connection until shutdown
// through its connection manager (conns.go).
//
// It must never accept an unauthenticated peer on TCP, never let a peer
// that is not the owner call a write method, and never acknowledge a
// publish before it is durable in the store.
package sbot
