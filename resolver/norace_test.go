//go:build !race

package resolver

const raceSlack = 0
