// Package plugins groups the muxrpc services of the sbot daemon, one
// subpackage per service name as the JavaScript stack spells it. Each
// subpackage declares a service.Service from a small constructor (its
// methods with who may call them, and optional hooks) and the narrow
// interfaces it needs, so it can be tested with fakes. Plugins never open
// stores or sockets themselves.
package plugins
