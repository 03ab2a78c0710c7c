package ui

import (
	"context"
	"math"
	"net/netip"
)

// CellDeg is the side of the map's grid cells, in degrees: a region's
// shading is the routing of the sampled networks placed in its cell.
const CellDeg = 3.0

// perCell bounds the networks routed per cell: enough to show a dial or a
// spillover splitting a region, few enough that a map costs milliseconds.
const perCell = 6

// sample is the map's client networks, grouped by grid cell. Immutable.
type sample struct {
	gen      uint64 // the locator generation it was drawn from
	cells    []cell
	networks int // networks placed with coordinates
}

// cell is one grid cell with networks in it.
type cell struct {
	row, col int            // from the top-left: lat 90-row*CellDeg, lon -180+col*CellDeg
	nets     []netip.Prefix // at most perCell
	count    int            // networks placed in the cell, all of them
}

// buildSample places one IPv4 /24 in every /16 (65,536 networks, as the
// router's demand estimate does) and groups those with coordinates by
// cell. Nil when ctx ends first.
func buildSample(ctx context.Context, loc Locator) *sample {
	gen := loc.Generation()
	const cols = int(360 / CellDeg)
	idx := map[int]int{}
	sm := &sample{gen: gen}
	for n := 0; n < 1<<16; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return nil
		}
		addr := netip.AddrFrom4([4]byte{byte(n >> 8), byte(n), 128, 0})
		l, ok := loc.Locate(addr)
		if !ok || !l.HasCoords {
			continue
		}
		row := int(math.Floor((90 - l.Lat) / CellDeg))
		col := int(math.Floor((l.Lon + 180) / CellDeg))
		row, col = min(max(row, 0), int(180/CellDeg)-1), min(max(col, 0), cols-1)
		k := row*cols + col
		i, ok := idx[k]
		if !ok {
			i = len(sm.cells)
			idx[k] = i
			sm.cells = append(sm.cells, cell{row: row, col: col})
		}
		c := &sm.cells[i]
		c.count++
		if len(c.nets) < perCell {
			c.nets = append(c.nets, netip.PrefixFrom(addr, 24))
		}
		sm.networks++
	}
	return sm
}
