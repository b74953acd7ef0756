//go:build !race

package primitives

const raceEnabled = false
