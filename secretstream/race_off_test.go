//go:build !race

package secretstream_test

// raceScale stretches latency limits under the race detector, which makes
// the handshake's cryptography several times slower.
const raceScale = 1
