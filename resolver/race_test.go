//go:build race

package resolver

// raceSlack is added to allocation bounds under the race detector.
const raceSlack = 1
