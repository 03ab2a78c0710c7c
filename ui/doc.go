// Package ui serves the status page at /ui/: a world map of each service's
// sites coloured by health, shaded by where each region's clients are sent
// right now (a sample of client networks from the GeoIP data routed
// through the real router, redone only when the router publishes new
// plans), per-site and per-endpoint state, a timeline of transitions,
// reloads and operator changes, and drains and dials made with the API
// token. Its assets are embedded: the page needs nothing but the binary.
package ui
