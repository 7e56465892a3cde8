//go:build !race

package bench

// raceDetector says the tests run with -race (test.sh and CI do).
const raceDetector = false
