// Command genworld turns world-atlas's countries TopoJSON (Natural Earth
// 1:110m, via the npm package world-atlas) into the status page's map:
// one SVG path per country in the page's equirectangular projection, so
// the browser draws it with no map library. scripts/gen-world.sh runs it.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The page's projection: longitude -180..180 to x 0..W, latitude 90..-90
// to y 0..W/2 (equirectangular). ui/assets/app.js uses the same.
const W = 1000.0

type topology struct {
	Transform struct {
		Scale     [2]float64 `json:"scale"`
		Translate [2]float64 `json:"translate"`
	} `json:"transform"`
	Objects struct {
		Countries struct {
			Geometries []struct {
				Type       string          `json:"type"`
				Arcs       json.RawMessage `json:"arcs"`
				ID         string          `json:"id"`
				Properties struct {
					Name string `json:"name"`
				} `json:"properties"`
			} `json:"geometries"`
		} `json:"countries"`
	} `json:"objects"`
	Arcs [][][2]float64 `json:"arcs"`
}

// Country is one entry of the generated file.
type Country struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	D    string `json:"d"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genworld countries-110m.json > world.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var t topology
	if err := json.Unmarshal(b, &t); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Decode the delta-encoded, quantized arcs into projected points.
	arcs := make([][][2]float64, len(t.Arcs))
	for i, a := range t.Arcs {
		x, y := 0.0, 0.0
		for _, p := range a {
			x, y = x+p[0], y+p[1]
			lon := x*t.Transform.Scale[0] + t.Transform.Translate[0]
			lat := y*t.Transform.Scale[1] + t.Transform.Translate[1]
			arcs[i] = append(arcs[i], [2]float64{(lon + 180) / 360 * W, (90 - lat) / 180 * W / 2})
		}
	}
	points := func(idx []int) [][2]float64 {
		var pts [][2]float64
		for _, i := range idx {
			var a [][2]float64
			if i >= 0 {
				a = arcs[i]
			} else {
				src := arcs[^i]
				for k := len(src) - 1; k >= 0; k-- {
					a = append(a, src[k])
				}
			}
			if len(pts) > 0 {
				a = a[1:] // shared with the previous arc's end
			}
			pts = append(pts, a...)
		}
		return pts
	}
	ring := func(idx []int) string {
		pts := points(idx)
		// A ring across the antimeridian jumps across the map: move its
		// western part east of the edge so it is continuous, and draw it
		// a second time a map's width to the left for the other edge.
		jump := false
		for k := 1; k < len(pts); k++ {
			if math.Abs(pts[k][0]-pts[k-1][0]) > W/2 {
				jump = true
			}
		}
		if !jump {
			return path(pts)
		}
		for k := range pts {
			if pts[k][0] < W/2 {
				pts[k][0] += W
			}
		}
		left := make([][2]float64, len(pts))
		for k, p := range pts {
			left[k] = [2]float64{p[0] - W, p[1]}
		}
		return path(pts) + path(left)
	}
	var out []Country
	for _, g := range t.Objects.Countries.Geometries {
		var polys [][][]int
		switch g.Type {
		case "Polygon":
			var p [][]int
			if err := json.Unmarshal(g.Arcs, &p); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			polys = [][][]int{p}
		case "MultiPolygon":
			if err := json.Unmarshal(g.Arcs, &polys); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		default:
			continue
		}
		var d strings.Builder
		for _, p := range polys {
			for _, r := range p {
				d.WriteString(ring(r))
			}
		}
		out = append(out, Country{ID: g.ID, Name: g.Properties.Name, D: d.String()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{
		"source":    "Natural Earth 1:110m (public domain) via world-atlas 2.0.2 (ISC, Mike Bostock)",
		"width":     W,
		"height":    W / 2,
		"countries": out,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// path is a closed SVG path through pts, to a tenth of a unit.
func path(pts [][2]float64) string {
	var sb strings.Builder
	lx, ly := math.NaN(), math.NaN()
	for k, p := range pts {
		x, y := math.Round(p[0]*10)/10, math.Round(p[1]*10)/10
		if x == lx && y == ly {
			continue // the same tenth: drop
		}
		if k == 0 {
			sb.WriteByte('M')
		} else {
			sb.WriteByte('L')
		}
		sb.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
		sb.WriteByte(' ')
		sb.WriteString(strconv.FormatFloat(y, 'f', -1, 64))
		lx, ly = x, y
	}
	sb.WriteByte('Z')
	return sb.String()
}
