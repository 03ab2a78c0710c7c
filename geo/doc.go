// Package geo owns client location: it reads GeoIP databases (MaxMind
// GeoIP2/GeoLite2 City and Country, DB-IP Lite City in the flat schema),
// turns an address into a Location, reloads databases when their files
// change, and ranks sites by great-circle distance and rules.
package geo
