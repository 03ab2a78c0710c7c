package geo

import (
	"net/netip"
	"strings"
)

// Location is where a database places a client address.
type Location struct {
	Country         string // ISO 3166-1 alpha-2, upper case; "" if unknown
	Continent       string // AF AN AS EU NA OC SA; derived from Country if the DB lacks it
	Subdivision     string // ISO 3166-2 code ("US-CA") when the DB has one
	SubdivisionName string // e.g. "California" (DB-IP has names, not codes)
	City            string
	Lat, Lon        float64
	HasCoords       bool
	// Network is the database network that matched, in the client's address
	// family: every address in it gets this same Location.
	Network netip.Prefix
	// Source names the database file that answered.
	Source string
}

// Known reports whether the location is good for routing: it has
// coordinates or at least a country.
func (l Location) Known() bool { return l.HasCoords || l.Country != "" }

// continents maps ISO 3166-1 alpha-2 codes to continent codes, for
// databases (DB-IP's flat schema) that carry only the country.
var continents = func() map[string]string {
	m := map[string]string{}
	for cont, codes := range map[string]string{
		"AF": "DZ AO BJ BW BF BI CV CM CF TD KM CD CG CI DJ EG GQ ER SZ ET GA GM GH GN GW KE LS LR LY MG MW ML MR MU YT MA MZ NA NE NG RE RW SH ST SN SC SL SO ZA SS SD TZ TG TN UG EH ZM ZW",
		"AN": "AQ BV GS HM TF",
		"AS": "AF AM AZ BH BD BT IO BN KH CN CX CC GE HK IN ID IR IQ IL JP JO KZ KW KG LA LB MO MY MV MN MM NP KP OM PK PS PH QA SA SG KR LK SY TW TJ TH TL TR TM AE UZ VN YE",
		"EU": "AX AL AD AT BY BE BA BG HR CY CZ DK EE FO FI FR DE GI GR GG HU IS IE IM IT JE XK LV LI LT LU MT MD MC ME NL MK NO PL PT RO RU SM RS SK SI ES SJ SE CH UA GB VA",
		"NA": "AI AG AW BS BB BZ BM BQ VG CA KY CR CU CW DM DO SV GL GD GP GT HT HN JM MQ MX MS NI PA PR BL KN LC MF PM VC SX TT TC US VI",
		"OC": "AS AU CK FJ PF GU KI MH FM NR NC NZ NU NF MP PW PG PN WS SB TK TO TV VU WF UM",
		"SA": "AR BO BR CL CO EC FK GF GY PY PE SR UY VE",
	} {
		for _, c := range strings.Fields(codes) {
			m[c] = cont
		}
	}
	return m
}()

// ContinentOf returns the continent code of an ISO 3166-1 country code.
func ContinentOf(country string) string { return continents[strings.ToUpper(country)] }
