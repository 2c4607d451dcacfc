//go:build race

package upstream

// raceEnabled: the race detector makes every check several times slower, so
// the sweep test checks fewer servers (the bounds it asserts stay the same).
const raceEnabled = true
