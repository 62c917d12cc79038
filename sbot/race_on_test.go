//go:build race

package sbot

// raceScale stretches time limits under the race detector, which makes
// JSON parsing and cryptography several times slower.
const raceScale = 3
